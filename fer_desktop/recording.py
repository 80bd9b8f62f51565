"""A session's timeline as CSV: one row per processed frame and face, written as results arrive.

Columns (``COLUMNS``): ``time_s`` (seconds since recording started), ``frame``
(the source's frame number), ``face`` (the tracker's id: the same person keeps
it while seen), ``x, y, w, h`` (the box in frame pixels), ``label``,
``confidence``, the seven smoothed probabilities in FER-2013's order, and
``model``. A frame without a face gets one row with the face fields empty, so
every processed frame is accounted for.

Rows are flushed to disk at least every ``flush_every`` seconds and on
``close``, so an app that is closed, or a camera that is unplugged, loses no
row already written.

``AnnotatedVideoRecorder`` writes the same frames, drawn as ``fer-predict
--annotate`` draws them, to an MP4 beside the CSV. No Qt here.
"""

import csv
import logging
import os
import queue
import threading
import time
from pathlib import Path

import numpy as np

from fer_desktop.emotions import EMOTIONS

log = logging.getLogger(__name__)

COLUMNS = ["time_s", "frame", "face", "x", "y", "w", "h", "label", "confidence", *EMOTIONS, "model"]


def default_recording_path(folder: str | os.PathLike | None = None, now: float | None = None) -> Path:
    """``~/fer-desktop/recording-YYYYmmdd-HHMMSS.csv`` (or in ``folder``)."""
    folder = Path(folder) if folder else Path.home() / "fer-desktop"
    return folder / time.strftime("recording-%Y%m%d-%H%M%S.csv", time.localtime(now))


class TimelineRecorder:
    """Append inference results to a CSV file; ``add`` from one thread at a time."""

    def __init__(self, path: str | os.PathLike, flush_every: float = 0.5,
                 clock=time.monotonic) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "w", newline="", encoding="utf-8")
        except OSError as exc:
            raise OSError(f"{self.path}: cannot record here ({exc.strerror or exc})") from None
        self._writer = csv.writer(self._file)
        self._writer.writerow(COLUMNS)
        self._clock = clock
        self._start = clock()
        self._last_flush = self._start
        self.flush_every = flush_every
        self.rows = 0
        self.frames = 0

    @property
    def closed(self) -> bool:
        return self._file.closed

    def add(self, frame_id: int, faces, model: str) -> None:
        """One result: ``faces`` are ``TrackedFace`` (or anything with box, probs, label, confidence)."""
        if self._file.closed:
            return
        t = f"{self._clock() - self._start:.3f}"
        if not faces:
            self._writer.writerow([t, frame_id, *[""] * (len(COLUMNS) - 3), model])
            self.rows += 1
        for face in faces:
            b = face.box
            self._writer.writerow([t, frame_id, getattr(face, "track_id", ""), b.x, b.y, b.w, b.h, face.label,
                                   f"{face.confidence:.4f}", *(f"{float(p):.4f}" for p in face.probs), model])
            self.rows += 1
        self.frames += 1
        now = self._clock()
        if now - self._last_flush >= self.flush_every:
            self._file.flush()
            self._last_flush = now

    def close(self) -> None:
        if not self._file.closed:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()


class AnnotatedVideoRecorder:
    """Annotated frames to an MP4 (``mp4v``), drawn and encoded in a thread of its own.

    ``add`` only queues the frame, so the caller (the inference thread) never
    waits on the encoder. The video keeps real time at ``fps``: a frame is
    repeated until the next one arrives, so a model slower than the camera
    gives a video of the right length. If the encoder falls behind, frames are
    dropped (``dropped``) rather than piling up in memory.
    """

    def __init__(self, path: str | os.PathLike, fps: float = 30.0, queue_size: int = 8, clock=time.monotonic):
        self.path = Path(path)
        self.fps = float(fps)
        self.written = 0  # frames in the file, repeats included
        self.dropped = 0
        self.error: str | None = None  # one line, if the file could not be written
        self._clock = clock
        self._start = clock()
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._thread = threading.Thread(target=self._run, name="video recorder", daemon=True)
        self._thread.start()

    def add(self, image: np.ndarray, faces, maps: dict | None = None) -> None:
        """Queue ``image`` (BGR, not modified) with its ``faces`` and their explanation ``maps`` (by track id)."""
        try:
            self._queue.put_nowait((self._clock() - self._start, image, list(faces), maps))
        except queue.Full:
            self.dropped += 1

    def close(self, timeout: float = 5.0) -> bool:
        """Write what is queued and close the file; True if done within ``timeout`` s."""
        try:
            self._queue.put((None, None, None, None), timeout=timeout)
        except queue.Full:
            return False
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        import cv2

        from fer_desktop.overlay import draw_results

        writer, size = None, None  # size: (height, width) of the file's frames
        try:
            while True:
                t, image, faces, maps = self._queue.get()
                if image is None:
                    break
                if self.error is not None:
                    continue
                face_maps = None
                if maps and all(getattr(f, "track_id", None) in maps for f in faces):
                    face_maps = [maps[f.track_id] for f in faces]
                out = draw_results(image, faces, maps=face_maps)
                if size is not None and out.shape[:2] != size:  # another source, another size
                    out = cv2.resize(out, (size[1], size[0]), interpolation=cv2.INTER_AREA)
                if writer is None:
                    size = out.shape[:2]
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps,
                                             (size[1], size[0]))
                    if not writer.isOpened():
                        self.error = f"{self.path}: cannot write the video"
                        continue
                # Repeat this frame up to its time: the file plays at the pace things happened.
                due = max(self.written + 1, int(round(t * self.fps)) + 1)
                while self.written < due:
                    writer.write(out)
                    self.written += 1
        except Exception as exc:  # a full disk, an odd frame: stop writing, keep the app
            log.debug("video recording failed", exc_info=True)
            self.error = f"{self.path}: video recording stopped ({exc})"
        finally:
            if writer is not None:
                writer.release()
