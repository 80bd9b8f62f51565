"""A session's timeline as CSV: one row per processed frame and face, written as results arrive.

Columns (``COLUMNS``): ``time_s`` (seconds since recording started), ``frame``
(the source's frame number), ``face`` (the tracker's id: the same person keeps
it while seen), ``x, y, w, h`` (the box in frame pixels), ``label``,
``confidence``, the seven smoothed probabilities in FER-2013's order, and
``model``. A frame without a face gets one row with the face fields empty, so
every processed frame is accounted for.

Rows are flushed to disk at least every ``flush_every`` seconds and on
``close``, so an app that is closed, or a camera that is unplugged, loses no
row already written. No Qt here.
"""

import csv
import os
import time
from pathlib import Path

from fer_desktop.emotions import EMOTIONS

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
