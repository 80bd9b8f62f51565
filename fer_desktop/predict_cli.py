"""fer-predict: emotions of every face in images and videos, without a GUI.

    fer-predict PATH... [--model NAME] [--json | --csv FILE] [--annotate DIR] [--whole-image]
                        [--weights-dir DIR] [--device auto|cpu|cuda|mps] [--backend auto|onnx|torch]

The paths are checked first (a missing, empty or unreadable one is reported
before any model loads). Images: tiled detection (small faces in group photos
are found too); boxes are in the file's pixels, however large the photo (it is
read at no more than 4096 pixels a side). An image with no detectable face
gets "no face found", unless it looks like a face crop already (at most 256
pixels a side, near-square; see ``pipeline.looks_like_face_crop``) or
``--whole-image`` is given: then the whole image is classified and marked so.
Videos: every frame, detection on the whole frame (BlazeFace short-range: faces
larger than about a fifth of the frame; ``--tiled`` finds smaller ones, slower),
the faces of 16 frames classified in one batch; one row per frame and face;
frames without a face get one row with empty face fields in the CSV (and
``"faces": []`` in JSON), so every frame is accounted for. A video that ends
before the frame count its container declares (less a tolerance) is reported.

Output: a table on stdout by default; ``--json`` prints one JSON list (one record
per file), streamed as it goes: a video's frames are written as they are
processed, never held; ``--csv FILE`` writes ``path,frame,face,x,y,w,h,score,
label,confidence`` and the seven probabilities (frame 0 for images; an empty
score marks a whole-image row). ``--annotate DIR`` names each copy after its
input's stem, with ``-2``, ``-3`` ... for a name already used in the run (never
overwriting one of its outputs or inputs); a file of that name from an earlier
run is replaced. A file that cannot be read gets one line on stderr and the
others are still processed. Every problem is one line on stderr, and the exit
status says which kind it was (``EXIT_CODES``; of several, the highest).
``--verbose`` adds the traceback of an unexpected error and the library logs
(as does FER_DESKTOP_DEBUG=1).

Here is the command line; the rest is in ``predict_inputs`` (what is read),
``predict_files`` (labelling a file with the app's ``FramePipeline``),
``predict_sinks`` and ``predict_annotated`` (what is written) and
``predict_status`` (exit statuses and Ctrl-C).
"""

import argparse
import contextlib
import logging
import os
import re
import sys
from pathlib import Path

from fer_desktop.ensemble import model_names
from fer_desktop.predict_files import Predictor
from fer_desktop.predict_inputs import input_problem, is_video
from fer_desktop.predict_sinks import CsvSink, JsonSink, TableSink
from fer_desktop.predict_status import (EXIT_BAD_FILE, EXIT_CODES, EXIT_INTERRUPTED, EXIT_OK, EXIT_UNEXPECTED,
                                        EXIT_USAGE, EXIT_WEIGHTS, INTERRUPTED, InputError, ctrl_c_noted,
                                        stop_if_interrupted)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse exits 2, which fer-predict keeps for weights problems
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    ap = _Parser(
        prog="fer-predict",
        description="Facial emotions (FER-2013's seven) of every face in images and videos.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="exit status:\n" + "\n".join(f"  {code:<4d}{meaning}" for code, meaning in EXIT_CODES.items()))
    ap.add_argument("paths", nargs="+", metavar="PATH", help="image or video files")
    ap.add_argument("--model", default=None, choices=model_names(),
                    help="default: of the models with weights, the most accurate")
    out = ap.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true",
                     help="print one JSON list instead of a table (streamed: written as files and frames "
                          "are done)")
    out.add_argument("--csv", metavar="FILE", help="write one row per file, frame and face to FILE")
    ap.add_argument("--annotate", metavar="DIR",
                    help="also write annotated copies to DIR (images as NAME.annotated.png, videos as "
                         "NAME.annotated.mp4; NAME-2... where a name is taken in this run)")
    ap.add_argument("--explain", nargs="?", const="gradcam", choices=["gradcam", "attention"],
                    help="with --annotate: blend each face's explanation map (where the model looked) into "
                         "the copies: Grad-CAM (default, every model) or the model's own spatial attention "
                         "(attention_cnn, resnet50_cbam)")
    ap.add_argument("--whole-image", action="store_true",
                    help="images: where no face is detected, classify the whole image as one face (by "
                         "default only images that look like face crops, at most 256 pixels a side and "
                         "near-square, are; others get 'no face found')")
    ap.add_argument("--tiled", action="store_true",
                    help="videos: also scan tiles of each frame, to find faces smaller than about a fifth "
                         "of the frame (detection becomes some 20 times slower); images always are")
    ap.add_argument("--weights-dir", metavar="DIR", help="folder with <model>.safetensors and .json")
    ap.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:1, mps (cuda and mps "
                    "run PyTorch, from the torch extra)")
    ap.add_argument("--backend", choices=["auto", "onnx", "torch"], default="auto",
                    help="the engine: auto (ONNX Runtime on the CPU where the model is exported, else "
                         "PyTorch), onnx, or torch")
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="log what happens, library messages included; tracebacks of unexpected errors")
    return ap


def _error(message: str) -> None:
    # One line, whatever the message holds.
    print(f"fer-predict: {' '.join(str(message).split())}", file=sys.stderr)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    verbose = args.verbose or bool(os.environ.get("FER_DESKTOP_DEBUG"))
    if verbose:
        logging.basicConfig(level=logging.INFO, format="%(name)s: %(levelname)s: %(message)s")
    INTERRUPTED.clear()
    try:
        with ctrl_c_noted():
            status = _run(args, verbose)
        stop_if_interrupted()
        return status
    except KeyboardInterrupt:
        _error("interrupted")
        return EXIT_INTERRUPTED
    except Exception as exc:  # never a traceback at the user, unless asked for
        if verbose:
            import traceback

            traceback.print_exc()
        _error(f"unexpected error: {type(exc).__name__}: {exc} (--verbose shows where)")
        return EXIT_UNEXPECTED


def _run(args, verbose: bool = False) -> int:
    if args.explain and not args.annotate:
        _error("--explain draws into the annotated copies: add --annotate DIR")
        return EXIT_USAGE
    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", args.device):
        _error(f"--device {args.device}: not a device name; use auto, cpu, cuda, cuda:1 or mps")
        return EXIT_USAGE
    # The inputs before anything slow: a mistyped path is reported at once, with no model loaded.
    status = EXIT_OK
    paths = []
    for raw in args.paths:
        problem = input_problem(Path(raw))
        if problem:
            _error(problem)
            status = EXIT_BAD_FILE
        else:
            paths.append(Path(raw))
    if not paths:
        return status
    annotate_dir = None
    if args.annotate:
        annotate_dir = Path(args.annotate)
        try:
            annotate_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            _error(f"{annotate_dir}: cannot create the folder ({exc.strerror or exc})")
            return EXIT_USAGE
    if not verbose:
        _quiet_opencv()
    classifier, failed = _load_model(args)
    if classifier is None:
        return failed
    try:
        sink = (CsvSink(args.csv) if args.csv else JsonSink(sys.stdout) if args.json else TableSink(sys.stdout))
    except InputError as exc:
        _error(exc)
        return EXIT_USAGE
    return _process(args, paths, classifier, annotate_dir, sink, verbose, status)


def _quiet_opencv() -> None:
    """Damaged files are reported here, in a line: not by OpenCV's logs or FFmpeg's (whose
    level OpenCV reads from this variable when it first opens a video)."""
    import cv2

    with contextlib.suppress(AttributeError, cv2.error):
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET


def _load_model(args):
    """(the classifier, None), or (None, the exit status) once the reason is on stderr."""
    from fer_desktop.classifier import EngineUnavailableError, load_classifier
    from fer_desktop.weights import WeightsError, default_model, train_command

    if args.model is None:
        args.model = default_model(args.weights_dir)
        if args.model is None:
            _error(f"no trained weights found; train a model with: {train_command('baseline_cnn')}")
            return None, EXIT_WEIGHTS
    try:
        classifier = load_classifier(args.model, device=args.device, weights_dir=args.weights_dir,
                                     backend=args.backend)
    except WeightsError as exc:
        _error(exc)
        return None, EXIT_WEIGHTS
    except EngineUnavailableError as exc:  # PyTorch or the device asked for is not there: says what to do
        _error(f"{args.model}: {exc}")
        return None, EXIT_WEIGHTS
    except (ValueError, RuntimeError) as exc:  # a model the device cannot hold
        _error(f"cannot load {args.model} on {args.device}: {exc}")
        return None, EXIT_WEIGHTS
    if args.explain == "attention":
        from fer_desktop.explain import has_attention

        if not has_attention(classifier):
            _error(f"--explain attention: {args.model} computes no spatial attention; use --explain gradcam "
                   "or attention_cnn / resnet50_cbam")
            return None, EXIT_USAGE
    return classifier, None


def _process(args, paths: list[Path], classifier, annotate_dir: Path | None, sink, verbose: bool,
             status: int) -> int:
    """Every file into ``sink``; the exit status: ``status`` or, where a file had a worse problem, its."""
    import cv2

    from fer_desktop.detection import FaceDetector

    # Native stderr stays open: only the detector's creation is silenced (FaceDetector),
    # so a native crash's message still reaches the terminal.
    with FaceDetector(native_logs=verbose) as detector:
        predictor = Predictor(detector, classifier, annotate_dir, tiled_video=args.tiled,
                              explain=args.explain, whole_image=args.whole_image, inputs=paths)
        try:
            for path in paths:
                stop_if_interrupted()
                try:
                    problems = predictor.video(path, sink) if is_video(path) else predictor.image(path, sink)
                except InputError as exc:
                    sink.abort(str(exc))
                    problems = [exc]
                except (OSError, cv2.error, MemoryError) as exc:
                    problems = [InputError(f"{path}: cannot process ({type(exc).__name__}: {exc})")]
                    sink.abort(str(problems[0]))
                for problem in problems:
                    _error(problem)
                    status = max(status, problem.status)
        finally:
            sink.close()
    return status


if __name__ == "__main__":
    sys.exit(main())
