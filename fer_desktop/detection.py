"""Face detection with MediaPipe's Tasks API and the bundled BlazeFace model.

The model file ships inside the package, so detection works offline. Only this
module imports mediapipe.
"""

import contextlib
import os
import re
import sys
import tempfile
import threading
from pathlib import Path

import cv2
import numpy as np

from fer_desktop.preprocessing import Box, overlap

TILE_MIN_SCORE = 0.75  # tiles see more non-face texture close up: be stricter
MIN_TILE = 160  # smallest tile side scanned in tiled mode, in pixels
MODEL_PATH = Path(__file__).resolve().parent / "assets" / "face_detection_short_range.tflite"
# MediaPipe's and LiteRT's C++ log lines (INFO, and warnings in absl's "W0000 ..." form).
_NATIVE_NOISE = re.compile(rb"(INFO: |I0000 |W0000 |WARNING: Logging before InitGoogle\(\))")
# LiteRT's warning that it copied an input tensor to align it: logged once per process, on
# the first detection whose internal tensor happens to be misaligned (which one depends on
# the heap). Until it has been seen, every detection is filtered.
_ALIGNMENT_WARNING = b"memory is not aligned"
_alignment_warning_seen = False
_STDERR_LOCK = threading.RLock()  # one redirection of fd 2 at a time, so each restores the right one
_capture = None  # the temporary file fd 2 goes to in native_logs_filtered


@contextlib.contextmanager
def native_logs_filtered(active: bool = True):
    """Keep MediaPipe's and LiteRT's log lines out of stderr for the duration of the block.

    They are written from C++ straight to fd 2 when a detector is created and closed, and
    on a detection, and no setting turns them off (GLOG_minloglevel and TF_CPP_MIN_LOG_LEVEL
    are not read). So fd 2 goes to a temporary file for the block; afterwards their lines are
    dropped and anything else (another thread's message) is written to stderr. Only these
    moments are filtered: a native crash anywhere else still shows its message.
    """
    global _alignment_warning_seen, _capture
    if not active:
        yield
        return
    with _STDERR_LOCK:
        saved = None
        try:
            sys.stderr.flush()
            if _capture is None:  # one file, emptied for each block (a new one costs 0.1 ms)
                _capture = tempfile.TemporaryFile(buffering=0)
            _capture.seek(0)
            _capture.truncate()
            saved = os.dup(2)
            os.dup2(_capture.fileno(), 2)
        except (OSError, ValueError, AttributeError):  # no fd 2 (a windowed app): nothing to filter
            if saved is not None:
                os.close(saved)
                saved = None
        try:
            yield
        finally:
            if saved is not None:
                with contextlib.suppress(OSError, ValueError, AttributeError):
                    sys.stderr.flush()
                os.dup2(saved, 2)
                os.close(saved)
                _capture.seek(0)
                text = _capture.read()
                _alignment_warning_seen = _alignment_warning_seen or _ALIGNMENT_WARNING in text
                lines = text.splitlines(keepends=True)
                kept = b"".join(line for line in lines if not _NATIVE_NOISE.match(line))
                if kept:
                    with contextlib.suppress(OSError):
                        os.write(2, kept)


def _native_logs_wanted(native_logs: bool | None) -> bool:
    return bool(os.environ.get("FER_DESKTOP_DEBUG")) if native_logs is None else native_logs


class FaceDetector:
    """Finds every face in a BGR frame and returns their boxes, best first.

    Use it as a context manager, or call ``close()``: MediaPipe's own finaliser
    fails noisily at interpreter exit.

    ``native_logs``: let MediaPipe's and LiteRT's C++ logs through to stderr (default:
    only with the FER_DESKTOP_DEBUG environment variable set); see ``native_logs_filtered``.
    """

    _detector = None

    def __init__(self, min_confidence: float = 0.5, model_path: str | Path = MODEL_PATH,
                 native_logs: bool | None = None) -> None:
        self._quiet = not _native_logs_wanted(native_logs)
        with native_logs_filtered(self._quiet):
            import mediapipe as mp
            from mediapipe.tasks.python import BaseOptions, vision

            self._mp = mp
            options = vision.FaceDetectorOptions(
                base_options=BaseOptions(model_asset_path=str(model_path)),
                running_mode=vision.RunningMode.IMAGE,
                min_detection_confidence=min_confidence,
            )
            self._detector = vision.FaceDetector.create_from_options(options)
            # A first detection: LiteRT's one warning is most often logged by it, here.
            self._detect_once(np.zeros((64, 64, 3), np.uint8))

    def detect(self, frame: np.ndarray, tiled: bool = False) -> list[Box]:
        """Boxes of all faces in a BGR, BGRA or grayscale uint8 frame, best first.

        BlazeFace short-range sees the frame at 128x128, so faces smaller than about
        a fifth of the frame are missed. ``tiled=True`` (for photos of groups) also
        scans overlapping tiles at several scales and merges the boxes.
        """
        with native_logs_filtered(self._quiet and not _alignment_warning_seen):
            return self._detect(frame, tiled)

    def _detect(self, frame: np.ndarray, tiled: bool) -> list[Box]:
        if not tiled:
            return self._detect_once(frame)
        height, width = frame.shape[:2]
        boxes = self._detect_once(frame)
        side = min(height, width)
        for _ in range(3):
            side //= 2
            if side < MIN_TILE:
                break
            step = side // 2
            for y in _starts(height, side, step):
                for x in _starts(width, side, step):
                    for b in self._detect_once(frame[y:y + side, x:x + side]):
                        # A box touching an inner tile edge is a cut face: its
                        # whole shows up in a neighbouring tile.
                        cut = ((b.x <= 1 and x > 0) or (b.y <= 1 and y > 0)
                               or (b.x + b.w >= side - 1 and x + side < width)
                               or (b.y + b.h >= side - 1 and y + side < height))
                        if not cut and b.score >= TILE_MIN_SCORE:
                            boxes.append(Box(b.x + x, b.y + y, b.w, b.h, b.score))
        return merge_boxes(boxes)

    def _detect_once(self, frame: np.ndarray) -> list[Box]:
        if frame.ndim == 2:
            rgb = cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
        elif frame.shape[2] == 4:
            rgb = cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB)
        else:
            rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        image = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))
        result = self._detector.detect(image)
        height, width = frame.shape[:2]
        boxes = []
        for det in result.detections:
            bb = det.bounding_box
            x0, y0 = max(0, bb.origin_x), max(0, bb.origin_y)
            x1, y1 = min(width, bb.origin_x + bb.width), min(height, bb.origin_y + bb.height)
            if x1 - x0 < 4 or y1 - y0 < 4:
                continue
            score = det.categories[0].score if det.categories else 0.0
            boxes.append(Box(x0, y0, x1 - x0, y1 - y0, float(score)))
        return sorted(boxes, key=lambda b: -b.score)

    def close(self) -> None:
        if self._detector is not None:
            with native_logs_filtered(self._quiet):  # LiteRT logs an INFO line here too
                self._detector.close()
            self._detector = None

    def __enter__(self) -> "FaceDetector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: mediapipe's internals may be gone
            pass


def _starts(length: int, side: int, step: int) -> list[int]:
    """Tile offsets covering ``length`` with tiles of ``side``, the last flush with the end."""
    starts = list(range(0, max(length - side, 0) + 1, step))
    if starts[-1] + side < length:
        starts.append(length - side)
    return starts


def _iou_or_containment(a: Box, b: Box) -> float:
    inter, union = overlap(a, b)
    smaller = min(a.w * a.h, b.w * b.h)
    # A face cut by a tile edge gives a small box inside the full one: treat
    # containment like overlap.
    return max(inter / union, inter / smaller * 0.8) if union else 0.0


def merge_boxes(boxes: list[Box], threshold: float = 0.4) -> list[Box]:
    """Greedy non-maximum suppression: keep the best box of each overlapping group."""
    kept: list[Box] = []
    for box in sorted(boxes, key=lambda b: -b.score):
        if all(_iou_or_containment(box, k) < threshold for k in kept):
            kept.append(box)
    return kept
