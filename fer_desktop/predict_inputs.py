"""What fer-predict reads: checks of the paths, and a video's frames decoded ahead.

Every path is checked before a model loads (``input_problem`` imports nothing),
so a mistyped one is reported at once. Images are read by ``image_io``; a video's
frames are decoded in a thread of their own (``open_video``), so decoding
overlaps detection.
"""

import os
import queue
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

from fer_desktop.predict_status import InputError

# A container's declared frame count can be off by a frame or two (and is an estimate from
# the duration where it holds no count): a video is only reported as ending early when
# it ends before its declared count less this many frames, or 1 % of them if more.
FRAME_COUNT_TOLERANCE = 2


def ends_early(read: int, declared: int | None) -> bool:
    """Whether ``read`` frames fall short of the ``declared`` count by more than the tolerance."""
    return bool(declared) and read < declared - max(FRAME_COUNT_TOLERANCE, declared // 100)


def input_problem(path: Path) -> str | None:
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


def is_video(path: Path) -> bool:
    from fer_desktop.image_io import is_video_path

    return is_video_path(path)


class Video:
    """An open video: its properties and its frames, decoded ahead; ``close`` when done."""

    def __init__(self, cap, fps: float, size: tuple[int, int], declared: int | None) -> None:
        self._cap = cap
        self.fps, self.size = fps, size
        self.declared = declared  # the frame count the container declares; None where it does not say
        self._rest = _prefetch(cap)  # from here on only the decoding thread touches ``cap``
        self.first = next(self._rest, None)

    def frames(self) -> Iterator:
        yield self.first
        yield from self._rest

    def close(self) -> None:
        self._rest.close()
        self._cap.release()


def open_video(path: Path) -> Video:
    """``path`` opened, with its first frame decoded; InputError where that cannot be done."""
    import cv2

    problem = input_problem(path)
    if problem:
        raise InputError(problem)
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise InputError(f"{path}: not a video, or a damaged one")
    fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
    size = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    video = Video(cap, fps, size, max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT))) or None)
    if video.first is None:
        video.close()
        raise InputError(f"{path}: no frame could be decoded")
    return video


def _prefetch(cap, depth: int = 8):
    """Frames of ``cap`` decoded in a background thread (decoding overlaps detection)."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(item) -> bool:
        """Wait for room in the queue; False if stopped first."""
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def reader() -> None:
        try:
            while not stop.is_set():
                ok, frame = cap.read()
                if not ok or not put(frame):
                    break
        finally:
            put(done)

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
