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
"""

import argparse
import contextlib
import csv
import functools
import json
import logging
import os
import queue
import re
import signal
import stat
import sys
import threading
from pathlib import Path

from fer_desktop.emotions import EMOTIONS
from fer_desktop.ensemble import model_names

BATCH_FRAMES = 16  # video frames whose faces share one forward pass
# A container's declared frame count can be off by a frame or two (and is an estimate from
# the duration where it holds no count): a video is only reported as ending early when
# it ends before its declared count less this many frames, or 1 % of them if more.
FRAME_COUNT_TOLERANCE = 2
CSV_HEADER = ["path", "frame", "face", "x", "y", "w", "h", "score", "label", "confidence", *EMOTIONS]
EXIT_OK, EXIT_BAD_FILE, EXIT_WEIGHTS, EXIT_USAGE, EXIT_UNEXPECTED, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130
EXIT_CODES = {
    EXIT_OK: "every file was processed",
    EXIT_BAD_FILE: "some files could not be read, or only in part (a video that ends before the frame "
                   "count it declares); the others were processed",
    EXIT_WEIGHTS: "no usable weights or model: missing, damaged, or not loadable on the device",
    EXIT_USAGE: "usage: a bad option, or an output file or folder that cannot be written (an annotated "
                "copy included)",
    EXIT_UNEXPECTED: "an unexpected error (a bug: --verbose shows the traceback)",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
}


# Set by Ctrl-C. Python drops a KeyboardInterrupt raised inside a finaliser (it only prints
# "Exception ignored"), and the run would then go on and exit 0; the flag still stops it with 130.
_INTERRUPTED = threading.Event()
_deferring = 0  # > 0 while an output record is written: Ctrl-C then waits for its end


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
        if not _deferring:
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _whole(method):
    """An output sink's method that Ctrl-C does not cut short (a half-written JSON line would make
    the whole list unreadable): the interruption is raised once it returns."""
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        global _deferring
        _deferring += 1
        try:
            result = method(*args, **kwargs)
        finally:
            _deferring -= 1
        if _INTERRUPTED.is_set() and not _deferring and method.__name__ != "close":
            raise KeyboardInterrupt
        return result

    return wrapper


class InputError(Exception):
    """A file that cannot be processed; the message is one line for the user."""

    status = EXIT_BAD_FILE


class OutputError(InputError):
    """An output (an annotated copy) that cannot be written."""

    status = EXIT_USAGE


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


# ---------------------------------------------------------------- output sinks
# Each file is start(), frame() per frame, then end(), or abort() when an error stops it
# after start(); ``extra`` holds the record's further fields (JSON names and values).

def _fmt(v: float) -> str:
    return f"{v:.4f}"


def _size(wh) -> str:
    return f"{wh[0]}x{wh[1]}"


class TableSink:
    """Readable rows on stdout, streamed as files are processed."""

    def __init__(self, stream) -> None:
        self.stream = stream
        self.kind, self.info = "", {}

    def start(self, path: str, kind: str, info: dict) -> None:
        self.kind, self.info = kind, info
        details = [kind, _size(info["size"])] + ([f"{info['fps']:.3g} fps"] if info.get("fps") else [])
        print(f"{path} ({', '.join(details)})", file=self.stream)
        print(f"  {'frame':>5} {'face':>4} {'box x,y,w,h':>20} {'score':>5}  {'label':<8} {'conf':>4}  "
              + " ".join(f"{e[:5]:>5}" for e in EMOTIONS), file=self.stream)

    def frame(self, path: str, index: int, result) -> None:
        if not result.faces:
            print(f"  {index:>5} {'-':>4} {'no face found':>20}", file=self.stream)
        for k, face in enumerate(result.faces):
            b = face.box
            score = "whole" if result.whole_image else f"{b.score:.2f}"
            print(f"  {index:>5} {k:>4} {f'{b.x},{b.y},{b.w},{b.h}':>20} {score:>5}  {face.label:<8} "
                  f"{100 * face.confidence:3.0f}%  " + " ".join(f"{p:5.2f}" for p in face.probs),
                  file=self.stream)
        if result.whole_image:
            print("        no face detected: the whole image was classified as one face", file=self.stream)

    def end(self, path: str, frames: int, faces: int, extra: dict) -> None:
        annotated = extra.get("annotated")
        if annotated:
            note = ""
            if annotated.get("shrunk_from"):
                note = f" ({_size(annotated['size'])}, shrunk from {_size(annotated['shrunk_from'])})"
            print(f"  annotated copy: {annotated['path']}{note}", file=self.stream)
        if self.kind == "video":
            declared = self.info.get("frames_declared")
            read = f"{frames} of {declared}" if declared and declared != frames else f"{frames}"
            print(f"  -> {read} frame(s) read, {faces} face(s)\n", file=self.stream)

    def abort(self, message: str) -> None:
        pass  # the message is on stderr

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

    @_whole
    def start(self, path, kind, info) -> None:
        pass

    @_whole
    def frame(self, path: str, index: int, result) -> None:
        if not result.faces:  # no face found: one row with empty face fields
            self.writer.writerow([path, index] + [""] * (len(CSV_HEADER) - 2))
        for k, face in enumerate(result.faces):
            b = face.box
            score = "" if result.whole_image else f"{b.score:.4f}"
            self.writer.writerow([path, index, k, b.x, b.y, b.w, b.h, score, face.label,
                                  _fmt(face.confidence), *map(_fmt, face.probs)])

    @_whole
    def end(self, path, frames, faces, extra) -> None:
        self.file.flush()

    @_whole
    def abort(self, message: str) -> None:
        self.file.flush()

    @_whole
    def close(self) -> None:
        self.file.close()


class JsonSink:
    """One JSON list, written as it goes: nothing of a video is held until its end.

    An image's record is written when it is done; a video's is opened at its start,
    its frames follow one a line as they are processed, and its closing fields
    (``frames_read``, ``frames_declared``, ``annotated``) come after them. A record
    stopped by an error gets an ``error`` field, so the list always stays valid JSON.
    """

    def __init__(self, stream) -> None:
        self.stream = stream
        self.records = 0
        self.image: dict | None = None  # the image record being made
        self.video_frames: int | None = None  # frames written of the open video record
        self.stream.write("[")

    @staticmethod
    def _faces(result) -> list[dict]:
        return [{"box": [face.box.x, face.box.y, face.box.w, face.box.h],
                 "score": None if result.whole_image else round(face.box.score, 4),
                 "label": face.label, "confidence": round(face.confidence, 4),
                 "probabilities": {e: round(float(p), 4) for e, p in zip(EMOTIONS, face.probs)}}
                for face in result.faces]

    def _new_record(self) -> None:
        self.stream.write(",\n" if self.records else "\n")
        self.records += 1

    @_whole
    def start(self, path: str, kind: str, info: dict) -> None:
        record = {"path": path, "kind": kind, **info}
        if kind == "video":
            self._new_record()
            self.stream.write(json.dumps(record)[:-1] + ', "frames": [')
            self.video_frames = 0
        else:
            self.image = record

    @_whole
    def frame(self, path: str, index: int, result) -> None:
        if self.video_frames is not None:
            self.stream.write(("\n  " if self.video_frames == 0 else ",\n  ")
                              + json.dumps({"frame": index, "faces": self._faces(result)}))
            self.stream.flush()  # a reader (a pipe) gets each frame as it is done
            self.video_frames += 1
        else:
            self.image["faces"] = self._faces(result)
            self.image["whole_image"] = bool(result.whole_image)

    def _finish(self, fields: dict) -> None:
        if self.video_frames is not None:
            closing = json.dumps(fields)[1:]  # '"key": value, ...}' or '}'
            self.stream.write(("\n ]" if self.video_frames else "]") + (", " + closing if fields else "}"))
            self.video_frames = None
        elif self.image is not None:
            self._new_record()
            self.stream.write(json.dumps({**self.image, **fields}))
            self.image = None
        self.stream.flush()

    @_whole
    def end(self, path, frames, faces, extra) -> None:
        if self.video_frames is not None:
            extra = {"frames_read": frames, **extra}
        self._finish(extra)

    @_whole
    def abort(self, message: str) -> None:
        self._finish({"error": message})

    @_whole
    def close(self) -> None:
        self.abort("stopped before the end of the file")  # Ctrl-C or a bug: keep the JSON valid
        self.stream.write("\n]\n")
        self.stream.flush()


# ---------------------------------------------------------------- processing

def _ends_early(read: int, declared: int | None) -> bool:
    return bool(declared) and read < declared - max(FRAME_COUNT_TOLERANCE, declared // 100)


class Predictor:
    def __init__(self, detector, classifier, annotate_dir: Path | None, tiled_video: bool = False,
                 explain: str | None = None, whole_image: bool = False, inputs=()) -> None:
        from fer_desktop.pipeline import FramePipeline

        self.detector = detector
        self.classifier = classifier
        self.pipeline = FramePipeline(detector, classifier)
        self.annotate_dir = annotate_dir
        self.tiled_video = tiled_video
        self.explain = explain  # None, "gradcam" or "attention": maps in the annotated copies
        self.whole_image = whole_image  # classify any image without a detected face as a whole
        # Names taken in annotate_dir, case-folded (as case-insensitive file systems compare them):
        # this run's outputs, and its inputs that lie there (never written over).
        self._taken: set[str] = set()
        if annotate_dir is not None:
            folder = annotate_dir.resolve()
            self._taken = {Path(p).name.casefold() for p in inputs if Path(p).resolve().parent == folder}

    def _maps(self, faces):
        if self.explain is None or not len(faces):
            return None
        from fer_desktop.explain import explain

        return explain(self.classifier, faces, self.explain)

    def _annotated_path(self, path: Path, suffix: str) -> Path:
        """``STEM.annotated.png``, or ``STEM-2.annotated.png`` ... where this run took the name already."""
        n, name = 1, f"{path.stem}.annotated{suffix}"
        while name.casefold() in self._taken:
            n += 1
            name = f"{path.stem}-{n}.annotated{suffix}"
        self._taken.add(name.casefold())
        return self.annotate_dir / name

    def image(self, path: Path, sink) -> list[InputError]:
        """Label one image; the problems that did not stop it (none for images)."""
        from fer_desktop.image_io import ImageError, load_image
        from fer_desktop.pipeline import FaceResult, FrameResult, looks_like_face_crop

        try:
            loaded = load_image(path)
        except ImageError as exc:
            raise InputError(str(exc)) from None
        frame, (width, height) = loaded.image, loaded.original_size
        fallback = self.whole_image or looks_like_face_crop(width, height)
        result = self.pipeline(frame, whole_image_fallback=fallback, tiled=True)
        # Boxes in the file's pixels (the image may have been shrunk to be read).
        shown = FrameResult([FaceResult(loaded.to_original(f.box), f.probs) for f in result.faces],
                            result.whole_image)
        sink.start(str(path), "image", {"size": [width, height]})
        sink.frame(str(path), 0, shown)
        extra = {}
        if self.annotate_dir is not None:
            out = self._write_image(path, frame, result)
            extra["annotated"] = {"path": str(out), "size": [frame.shape[1], frame.shape[0]]}
            if loaded.shrunk:  # drawn at the working size: say so
                extra["annotated"]["shrunk_from"] = [width, height]
        sink.end(str(path), 1, len(result.faces), extra)
        return []

    def _write_image(self, path: Path, frame, result) -> Path:
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
            raise OutputError(f"{out}: cannot write the annotated image ({exc.strerror or exc})") from None
        return out

    def video(self, path: Path, sink) -> list[InputError]:
        """Label every frame of a video; the problems that did not stop it (it ended early, its
        annotated copy could not be written), reported once its record is complete."""
        import cv2
        import numpy as np

        from fer_desktop.pipeline import FaceResult, FrameResult
        from fer_desktop.preprocessing import crop_faces

        problem = _input_problem(path)
        if problem:
            raise InputError(problem)
        cap = cv2.VideoCapture(str(path))
        if not cap.isOpened():
            raise InputError(f"{path}: not a video, or a damaged one")
        fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        declared = max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT))) or None  # None: the container does not say
        frames = _prefetch(cap)
        first = next(frames, None)
        if first is None:
            frames.close()
            cap.release()
            raise InputError(f"{path}: no frame could be decoded")
        writer = out = None
        if self.annotate_dir is not None:
            out = self._annotated_path(path, ".mp4")
            writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps or 25.0,
                                     (first.shape[1], first.shape[0]))
            if not writer.isOpened():
                frames.close()
                cap.release()
                raise OutputError(f"{out}: cannot write the annotated video")
        sink.start(str(path), "video", {"size": [w, h], "fps": round(fps, 3), "frames_declared": declared})
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
        problems: list[InputError] = []
        extra = {}
        if writer is not None:
            if _video_written(out, n_frames):
                extra["annotated"] = {"path": str(out)}
            else:  # OpenCV reports no failed write: a full disk leaves a cut, unplayable file
                problems.append(OutputError(f"{out}: the annotated video could not be written completely "
                                            "(disk full, or the folder not writable?)"))
        if _ends_early(n_frames, declared):
            problems.append(InputError(f"{path}: the video ends early: {n_frames} of the {declared} frames "
                                       "it declares were read (a truncated or damaged file)"))
        sink.end(str(path), n_frames, n_faces, extra)
        return problems


def _video_written(path: Path, frames: int) -> bool:
    """Whether the video at ``path`` opens and holds (about) ``frames`` frames."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        return cap.isOpened() and not _ends_early(int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), frames)
    finally:
        cap.release()


def _input_problem(path: Path) -> str | None:
    """Why ``path`` cannot be an input (missing, a folder, empty, unreadable), or None. Cheap (it
    imports nothing): every path is checked before a model loads."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return f"{path}: no such file"
    except (OSError, ValueError) as exc:
        return f"{path}: cannot read ({getattr(exc, 'strerror', None) or exc})"
    if stat.S_ISDIR(st.st_mode):
        return f"{path}: is a folder, not a file"
    if stat.S_ISREG(st.st_mode) and st.st_size == 0:
        return f"{path}: file is empty"
    if not os.access(path, os.R_OK):
        return f"{path}: cannot read (permission denied)"
    return None


def _is_video(path: Path) -> bool:
    from fer_desktop.image_io import is_video_path

    return is_video_path(path)


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
        # Native stderr stays open: only the detector's creation is silenced (FaceDetector),
        # so a native crash's message still reaches the terminal.
        with _ctrl_c_noted():
            status = _run(args, verbose)
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
        problem = _input_problem(Path(raw))
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

    import cv2

    if not verbose:
        # Damaged files are reported here, in a line: not by OpenCV's logs or FFmpeg's (whose
        # level OpenCV reads from this variable when it first opens a video).
        with contextlib.suppress(AttributeError, cv2.error):
            cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
    from fer_desktop.classifier import EngineUnavailableError, load_classifier
    from fer_desktop.weights import WeightsError, default_model, train_command

    if args.model is None:
        args.model = default_model(args.weights_dir)
        if args.model is None:
            _error(f"no trained weights found; train a model with: {train_command('baseline_cnn')}")
            return EXIT_WEIGHTS
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
    with FaceDetector(native_logs=verbose) as detector:
        predictor = Predictor(detector, classifier, annotate_dir, tiled_video=args.tiled,
                              explain=args.explain, whole_image=args.whole_image, inputs=paths)
        try:
            for path in paths:
                if _INTERRUPTED.is_set():
                    raise KeyboardInterrupt
                try:
                    problems = predictor.video(path, sink) if _is_video(path) else predictor.image(path, sink)
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
