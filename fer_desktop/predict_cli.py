"""fer-predict: emotions of every face in images and videos, without a GUI.

    fer-predict PATH... [--model NAME] [--json | --csv FILE] [--annotate DIR]
                        [--weights-dir DIR] [--device auto|cpu|cuda|mps] [--backend auto|onnx|torch]

Images: tiled detection (small faces in group photos are found too); an image
with no detectable face is classified as a whole and marked so. Videos: every
frame, detection on the whole frame (BlazeFace short-range: faces larger than
about a fifth of the frame; ``--tiled`` finds smaller ones, slower), the faces of
16 frames classified in one batch; one row per frame and face; frames without a face get one row with empty
face fields in the CSV (and ``"faces": []`` in JSON), so every frame is accounted for.

Output: a table on stdout by default; ``--json`` prints one JSON list (one record
per file); ``--csv FILE`` writes ``path,frame,face,x,y,w,h,score,label,confidence``
and the seven probabilities (frame 0 for images; an empty score marks a
whole-image row). A file that cannot be read gets one line on stderr and the
others are still processed. Every problem is one line on stderr, and the exit
status says which kind it was (``EXIT_CODES``). ``--verbose`` adds the
traceback of an unexpected error and the library logs (as does FER_DESKTOP_DEBUG=1).
"""

import argparse
import contextlib
import csv
import json
import logging
import os
import queue
import re
import signal
import sys
import threading
from pathlib import Path

from fer_desktop.emotions import EMOTIONS
from fer_desktop.ensemble import model_names

BATCH_FRAMES = 16  # video frames whose faces share one forward pass
CSV_HEADER = ["path", "frame", "face", "x", "y", "w", "h", "score", "label", "confidence", *EMOTIONS]
EXIT_OK, EXIT_BAD_FILE, EXIT_WEIGHTS, EXIT_USAGE, EXIT_UNEXPECTED, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130
EXIT_CODES = {
    EXIT_OK: "every file was processed",
    EXIT_BAD_FILE: "some files could not be read (the others were processed)",
    EXIT_WEIGHTS: "no usable weights or model: missing, damaged, or not loadable on the device",
    EXIT_USAGE: "usage: a bad option, or an output file or folder that cannot be written",
    EXIT_UNEXPECTED: "an unexpected error (a bug: --verbose shows the traceback)",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
}


# Set by Ctrl-C. Python drops a KeyboardInterrupt raised inside a finaliser (it only prints
# "Exception ignored"), and the run would then go on and exit 0; the flag still stops it with 130.
_INTERRUPTED = threading.Event()


@contextlib.contextmanager
def _ctrl_c_noted():
    previous = signal.getsignal(signal.SIGINT)
    # Only in place of Python's own handler: keep SIGINT ignored where the shell ignores it
    # (background jobs), and leave other threads' and embedders' handlers alone.
    in_main = threading.current_thread() is threading.main_thread()
    if previous is not signal.default_int_handler or not in_main:
        yield
        return

    def on_sigint(signum, frame):
        _INTERRUPTED.set()
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class InputError(Exception):
    """A file that cannot be processed; the message is one line for the user."""


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
    out.add_argument("--json", action="store_true", help="print one JSON list instead of a table")
    out.add_argument("--csv", metavar="FILE", help="write one row per file, frame and face to FILE")
    ap.add_argument("--annotate", metavar="DIR",
                    help="also write annotated copies to DIR (images as .png, videos as .mp4)")
    ap.add_argument("--explain", nargs="?", const="gradcam", choices=["gradcam", "attention"],
                    help="with --annotate: blend each face's explanation map (where the model looked) into "
                         "the copies: Grad-CAM (default, every model) or the model's own spatial attention "
                         "(attention_cnn, resnet50_cbam)")
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


# ---------------------------------------------------------------- output sinks

def _fmt(v: float) -> str:
    return f"{v:.4f}"


class TableSink:
    """Readable rows on stdout, streamed as files are processed."""

    def __init__(self, stream) -> None:
        self.stream = stream
        self.header_done = False

    def start(self, path: str, kind: str, info: str) -> None:
        print(f"{path} ({kind}{', ' + info if info else ''})", file=self.stream)
        print(f"  {'frame':>5} {'face':>4} {'box x,y,w,h':>20} {'score':>5}  {'label':<8} {'conf':>4}  "
              + " ".join(f"{e[:5]:>5}" for e in EMOTIONS), file=self.stream)

    def frame(self, path: str, index: int, result) -> None:
        if not result.faces:
            print(f"  {index:>5} {'-':>4} {'no face':>20}", file=self.stream)
        for k, face in enumerate(result.faces):
            b = face.box
            score = "whole" if result.whole_image else f"{b.score:.2f}"
            print(f"  {index:>5} {k:>4} {f'{b.x},{b.y},{b.w},{b.h}':>20} {score:>5}  {face.label:<8} "
                  f"{100 * face.confidence:3.0f}%  " + " ".join(f"{p:5.2f}" for p in face.probs),
                  file=self.stream)
        if result.whole_image:
            print("        no face detected: the whole image was classified as one face", file=self.stream)

    def end(self, path: str, frames: int, faces: int) -> None:
        print(f"  -> {frames} frame(s), {faces} face(s)\n" if frames > 1 else "", file=self.stream, end="")

    def close(self) -> None:
        self.stream.flush()


class CsvSink:
    def __init__(self, path: str) -> None:
        try:
            self.file = open(path, "w", newline="", encoding="utf-8")
        except OSError as exc:
            raise InputError(f"{path}: cannot write the CSV file ({exc.strerror or exc})") from None
        self.writer = csv.writer(self.file)
        self.writer.writerow(CSV_HEADER)

    def start(self, path, kind, info) -> None:
        pass

    def frame(self, path: str, index: int, result) -> None:
        if not result.faces:
            self.writer.writerow([path, index] + [""] * (len(CSV_HEADER) - 2))
        for k, face in enumerate(result.faces):
            b = face.box
            score = "" if result.whole_image else f"{b.score:.4f}"
            self.writer.writerow([path, index, k, b.x, b.y, b.w, b.h, score, face.label,
                                  _fmt(face.confidence), *map(_fmt, face.probs)])

    def end(self, path, frames, faces) -> None:
        pass

    def close(self) -> None:
        self.file.close()


class JsonSink:
    def __init__(self, stream) -> None:
        self.stream = stream
        self.records: list[dict] = []
        self.current: dict | None = None

    @staticmethod
    def _faces(result) -> list[dict]:
        return [{"box": [face.box.x, face.box.y, face.box.w, face.box.h],
                 "score": None if result.whole_image else round(face.box.score, 4),
                 "label": face.label, "confidence": round(face.confidence, 4),
                 "probabilities": {e: round(float(p), 4) for e, p in zip(EMOTIONS, face.probs)}}
                for face in result.faces]

    def start(self, path: str, kind: str, info: str) -> None:
        self.current = {"path": path, "kind": kind}
        if kind == "video":
            self.current["frames"] = []

    def frame(self, path: str, index: int, result) -> None:
        if self.current["kind"] == "video":
            self.current["frames"].append({"frame": index, "faces": self._faces(result)})
        else:
            self.current["faces"] = self._faces(result)
            self.current["whole_image"] = bool(result.whole_image)

    def end(self, path, frames, faces) -> None:
        self.records.append(self.current)
        self.current = None

    def abort(self) -> None:
        self.current = None

    def close(self) -> None:
        json.dump(self.records, self.stream, indent=1)
        self.stream.write("\n")
        self.stream.flush()


# ---------------------------------------------------------------- processing

class Predictor:
    def __init__(self, detector, classifier, annotate_dir: Path | None, tiled_video: bool = False,
                 explain: str | None = None) -> None:
        from fer_desktop.pipeline import FramePipeline

        self.detector = detector
        self.classifier = classifier
        self.pipeline = FramePipeline(detector, classifier)
        self.annotate_dir = annotate_dir
        self.tiled_video = tiled_video
        self.explain = explain  # None, "gradcam" or "attention": maps in the annotated copies

    def _maps(self, faces):
        if self.explain is None or not len(faces):
            return None
        from fer_desktop.explain import explain

        return explain(self.classifier, faces, self.explain)

    def _annotated_path(self, path: Path, suffix: str) -> Path:
        return self.annotate_dir / f"{path.stem}.annotated{suffix}"

    def image(self, path: Path, sink) -> int:
        from fer_desktop.image_io import ImageError, read_image

        try:
            frame = read_image(path)
        except ImageError as exc:
            raise InputError(str(exc)) from None
        result = self.pipeline(frame, whole_image_fallback=True, tiled=True)
        h, w = frame.shape[:2]
        sink.start(str(path), "image", f"{w}x{h}")
        sink.frame(str(path), 0, result)
        sink.end(str(path), 1, len(result.faces))
        if self.annotate_dir is not None:
            self._write_image(path, frame, result)
        return len(result.faces)

    def _write_image(self, path: Path, frame, result) -> None:
        import cv2

        from fer_desktop.overlay import draw_results
        from fer_desktop.preprocessing import crop_faces, whole_image_face

        maps = None
        if self.explain is not None and result.faces:
            faces = whole_image_face(frame) if result.whole_image else crop_faces(frame, [f.box for f in result.faces])
            maps = self._maps(faces)
        out = self._annotated_path(path, ".png")
        ok, data = cv2.imencode(".png", draw_results(frame, result.faces, maps=maps, whole_image=result.whole_image))
        try:
            if not ok:
                raise OSError("encoding failed")
            data.tofile(str(out))
        except OSError as exc:
            raise InputError(f"{out}: cannot write the annotated image ({exc})") from None

    def video(self, path: Path, sink) -> int:
        import cv2
        import numpy as np

        from fer_desktop.pipeline import FaceResult, FrameResult
        from fer_desktop.preprocessing import crop_faces

        if not path.exists():
            raise InputError(f"{path}: no such file")
        if path.is_dir():
            raise InputError(f"{path}: is a folder, not a video")
        if path.stat().st_size == 0:
            raise InputError(f"{path}: file is empty")
        cap = cv2.VideoCapture(str(path))
        if not cap.isOpened():
            raise InputError(f"{path}: not a video, or a damaged one")
        fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        frames = _prefetch(cap)
        first = next(frames, None)
        if first is None:
            cap.release()
            raise InputError(f"{path}: no frame could be decoded")
        writer = None
        if self.annotate_dir is not None:
            out = self._annotated_path(path, ".mp4")
            writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps or 25.0,
                                     (first.shape[1], first.shape[0]))
            if not writer.isOpened():
                cap.release()
                raise InputError(f"{out}: cannot write the annotated video")
        sink.start(str(path), "video", f"{w}x{h}, {fps:.3g} fps")
        from fer_desktop.overlay import draw_results

        n_frames = n_faces = 0
        batch: list = []  # (index, frame or None, boxes, faces) of up to BATCH_FRAMES frames

        def flush() -> None:
            # One forward pass for the faces of the whole batch of frames.
            nonlocal n_faces
            faces = [f for *_, f in batch if len(f)]
            probs = self.classifier.predict(np.concatenate(faces)) if faces else None
            maps = self._maps(np.concatenate(faces)) if faces and writer is not None else None
            start = 0
            for index, frame, boxes, _ in batch:
                result = FrameResult([FaceResult(b, p) for b, p in zip(boxes, probs[start:start + len(boxes)])]
                                     if boxes else [])
                frame_maps = maps[start:start + len(boxes)] if maps is not None else None
                start += len(boxes)
                n_faces += len(boxes)
                sink.frame(str(path), index, result)
                if writer is not None:
                    writer.write(draw_results(frame, result.faces, maps=frame_maps))
            batch.clear()

        try:
            for frame in _chain(first, frames):
                if _INTERRUPTED.is_set():
                    raise KeyboardInterrupt
                boxes = self.detector.detect(frame, tiled=True) if self.tiled_video else self.detector.detect(frame)
                batch.append((n_frames, frame if writer is not None else None, boxes, crop_faces(frame, boxes)))
                n_frames += 1
                if len(batch) >= BATCH_FRAMES:
                    flush()
            flush()
        finally:
            frames.close()
            cap.release()
            if writer is not None:
                writer.release()
        sink.end(str(path), n_frames, n_faces)
        return n_faces


def _chain(first, rest):
    yield first
    yield from rest


def _prefetch(cap, depth: int = 8):
    """Frames of ``cap`` decoded in a background thread (decoding overlaps detection)."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def reader() -> None:
        try:
            while not stop.is_set():
                ok, frame = cap.read()
                if not ok:
                    break
                while not stop.is_set():
                    try:
                        q.put(frame, timeout=0.1)
                        break
                    except queue.Full:
                        continue
        finally:
            while not stop.is_set():
                try:
                    q.put(done, timeout=0.1)
                    break
                except queue.Full:
                    continue

    thread = threading.Thread(target=reader, name="fer-predict-decode", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            yield item
    finally:
        stop.set()
        thread.join(timeout=2.0)


# ---------------------------------------------------------------- main

@contextlib.contextmanager
def _quiet_native_stderr(verbose: bool = False):
    """Silence the C++ logs of MediaPipe/LiteRT and OpenCV (they write to fd 2 directly).

    fer-predict's own messages still reach the terminal through a duplicate of stderr.
    """
    if os.environ.get("FER_DESKTOP_DEBUG") or verbose:
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield
        return
    old_stderr = sys.stderr
    try:
        uses_fd2 = sys.stderr.fileno() == 2
    except (OSError, ValueError, AttributeError):
        uses_fd2 = False
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    if uses_fd2:
        sys.stderr = open(saved, "w", closefd=False, buffering=1, encoding=old_stderr.encoding or "utf-8",
                          errors="backslashreplace")
    try:
        yield
    finally:
        sys.stderr.flush()
        if sys.stderr is not old_stderr:
            sys.stderr.close()
            sys.stderr = old_stderr
        os.dup2(saved, 2)
        os.close(saved)


def _error(message: str) -> None:
    # One line, whatever the message holds.
    print(f"fer-predict: {' '.join(str(message).split())}", file=sys.stderr)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    verbose = args.verbose or bool(os.environ.get("FER_DESKTOP_DEBUG"))
    if verbose:
        logging.basicConfig(level=logging.INFO, format="%(name)s: %(levelname)s: %(message)s")
    _INTERRUPTED.clear()
    try:
        with _quiet_native_stderr(verbose), _ctrl_c_noted():
            status = _run(args)
        if _INTERRUPTED.is_set():
            raise KeyboardInterrupt
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


def _run(args) -> int:
    import cv2

    with contextlib.suppress(AttributeError, cv2.error):  # errors only; we report damaged files ourselves
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    from fer_desktop.classifier import EngineUnavailableError, load_classifier
    from fer_desktop.image_io import is_video_path
    from fer_desktop.weights import WeightsError, default_model, train_command

    if args.explain and not args.annotate:
        _error("--explain draws into the annotated copies: add --annotate DIR")
        return EXIT_USAGE
    annotate_dir = None
    if args.annotate:
        annotate_dir = Path(args.annotate)
        try:
            annotate_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            _error(f"{annotate_dir}: cannot create the folder ({exc.strerror or exc})")
            return EXIT_USAGE
    if args.model is None:
        args.model = default_model(args.weights_dir)
        if args.model is None:
            _error(f"no trained weights found; train a model with: {train_command('baseline_cnn')}")
            return EXIT_WEIGHTS
    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", args.device):
        _error(f"--device {args.device}: not a device name; use auto, cpu, cuda, cuda:1 or mps")
        return EXIT_USAGE
    try:
        classifier = load_classifier(args.model, device=args.device, weights_dir=args.weights_dir,
                                     backend=args.backend)
    except WeightsError as exc:
        _error(exc)
        return EXIT_WEIGHTS
    except EngineUnavailableError as exc:  # PyTorch or the device asked for is not there: says what to do
        _error(f"{args.model}: {exc}")
        return EXIT_WEIGHTS
    except (ValueError, RuntimeError) as exc:  # a model the device cannot hold
        _error(f"cannot load {args.model} on {args.device}: {exc}")
        return EXIT_WEIGHTS
    if args.explain == "attention":
        from fer_desktop.explain import has_attention

        if not has_attention(classifier):
            _error(f"--explain attention: {args.model} computes no spatial attention; use --explain gradcam "
                   "or attention_cnn / resnet50_cbam")
            return EXIT_USAGE

    from fer_desktop.detection import FaceDetector

    try:
        sink = (CsvSink(args.csv) if args.csv else JsonSink(sys.stdout) if args.json else TableSink(sys.stdout))
    except InputError as exc:
        _error(exc)
        return EXIT_USAGE
    status = 0
    with FaceDetector() as detector:
        predictor = Predictor(detector, classifier, annotate_dir, tiled_video=args.tiled, explain=args.explain)
        try:
            for raw in args.paths:
                if _INTERRUPTED.is_set():
                    raise KeyboardInterrupt
                path = Path(raw)
                try:
                    if is_video_path(path):
                        predictor.video(path, sink)
                    else:
                        predictor.image(path, sink)
                except InputError as exc:
                    if isinstance(sink, JsonSink):
                        sink.abort()
                    _error(exc)
                    status = EXIT_BAD_FILE
                except (OSError, cv2.error, MemoryError) as exc:
                    if isinstance(sink, JsonSink):
                        sink.abort()
                    _error(f"{path}: cannot process ({type(exc).__name__}: {exc})")
                    status = EXIT_BAD_FILE
        finally:
            sink.close()
    return status


if __name__ == "__main__":
    sys.exit(main())
