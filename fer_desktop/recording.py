"""A session's timeline as CSV: one row per processed frame and face, written as results arrive.

Columns (``COLUMNS``): ``time_s`` (seconds since recording started), ``frame``
(the source's frame number), ``face`` (the tracker's id: the same person keeps
it while seen), ``x, y, w, h`` (the box in frame pixels), ``label``,
``confidence``, the seven smoothed probabilities in FER-2013's order, and
``model``. A frame without a face gets one row with the face fields empty, so
every processed frame is accounted for.

Rows are flushed to disk at least every ``flush_every`` seconds and on
``close``, so an app that is closed, or a camera that is unplugged, loses no
row already written. A recording never overwrites a file: names already taken
get ``-2``, ``-3``... A write error (a full disk) never raises from ``add``:
the recorder stops, keeps the file a valid CSV of the rows saved so far
(``saved_rows``) and says why in ``error``.

``AnnotatedVideoRecorder`` writes the same frames, drawn as ``fer-predict
--annotate`` draws them, to an MP4 beside the CSV. No Qt here.
"""

import csv
import errno
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


def _create_new(path: Path, siblings: tuple[str, ...]):
    """Open a file that did not exist: ``path``, else ``stem-2``, ``stem-3``... (exclusive creation, so two
    recordings started within the same second never share a file). A name is also taken while a file with
    the same stem and one of the ``siblings`` suffixes (the recording's MP4) exists."""
    for n in range(1, 1000):
        candidate = path if n == 1 else path.with_name(f"{path.stem}-{n}{path.suffix}")
        if any(candidate.with_suffix(suffix).exists() for suffix in siblings):
            continue
        try:
            return candidate, open(candidate, "x", newline="", encoding="utf-8")
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "every name is taken", str(path))


def describe_write_error(exc: OSError) -> str:
    """A write error in a few words: "disk full" for a full disk or quota."""
    if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return "disk full"
    return exc.strerror or str(exc)


class TimelineRecorder:
    """Append inference results to a new CSV file; ``add`` from one thread at a time.

    ``path`` is the name wanted; ``self.path`` is the one used (see ``_create_new``).
    """

    def __init__(self, path: str | os.PathLike, flush_every: float = 0.5,
                 clock=time.monotonic, siblings: tuple[str, ...] = ()) -> None:
        wanted = Path(path)
        try:
            wanted.parent.mkdir(parents=True, exist_ok=True)
            self.path, self._file = _create_new(wanted, siblings)
        except OSError as exc:
            raise OSError(f"{wanted}: cannot record here ({exc.strerror or exc})") from None
        self.error: str | None = None  # why recording stopped early ("disk full"), one line
        self.saved_rows = 0  # rows known to be on disk
        self._saved_bytes = 0  # the file's size after the last good flush: a whole number of rows
        self._writer = csv.writer(self._file)
        self._clock = clock
        self._start = clock()
        self._last_flush = self._start
        self.flush_every = flush_every
        self.rows = 0
        self.frames = 0
        try:  # the header at once: a disk that is already full is said now, not after the first rows
            self._writer.writerow(COLUMNS)
            self._flush()
        except OSError as exc:
            self._fail(exc)
            self.path.unlink(missing_ok=True)
            raise OSError(f"{self.path}: cannot record here ({self.error})") from None

    @property
    def closed(self) -> bool:
        return self._file.closed

    def add(self, frame_id: int, faces, model: str) -> None:
        """One result: ``faces`` are ``TrackedFace`` (or anything with box, probs, label, confidence).

        Never raises a write error: the recording stops instead (``error``)."""
        if self._file.closed:
            return
        try:
            t = f"{self._clock() - self._start:.3f}"
            if not faces:
                self._writer.writerow([t, frame_id, *[""] * (len(COLUMNS) - 3), model])
                self.rows += 1
            for face in faces:
                b = face.box
                self._writer.writerow([t, frame_id, getattr(face, "track_id", ""), b.x, b.y, b.w, b.h,
                                       face.label, f"{face.confidence:.4f}",
                                       *(f"{float(p):.4f}" for p in face.probs), model])
                self.rows += 1
            self.frames += 1
            now = self._clock()
            if now - self._last_flush >= self.flush_every:
                self._flush()
                self._last_flush = now
        except OSError as exc:
            self._fail(exc)

    def _flush(self) -> None:
        self._file.flush()
        self._saved_bytes = os.fstat(self._file.fileno()).st_size
        self.saved_rows = self.rows

    def _fail(self, exc: OSError) -> None:
        """Stop at a write error; what reached the disk stays a valid CSV."""
        log.debug("recording to %s failed", self.path, exc_info=True)
        self.error = describe_write_error(exc)
        try:
            self._file.close()  # flushes again, and fails again: the fd is closed all the same
        except OSError:
            pass
        try:  # a flush cut short may have left half a row: back to the last whole one
            os.truncate(self.path, self._saved_bytes)
        except OSError:
            log.debug("truncating %s failed", self.path, exc_info=True)

    def close(self) -> None:
        """Flush, sync and close; never raises (a write error ends in ``error``, as in ``add``)."""
        if self._file.closed:
            return
        try:
            self._flush()
            os.fsync(self._file.fileno())
            self._file.close()
        except OSError as exc:
            self._fail(exc)


MAX_REPEAT_S = 1.0  # a pause longer than this (a photo, a reconnect, a model loading) is cut to it


class AnnotatedVideoRecorder:
    """Annotated frames to an MP4 (``mp4v``), drawn and encoded in a thread of its own.

    ``add`` only queues the frame, so the caller (the inference thread) never
    waits on the encoder. The video keeps real time at ``fps``: a frame is
    repeated until the next one arrives, so a model slower than the camera
    gives a video of the right length; a pause longer than ``max_repeat_s`` is
    cut to that (ten minutes would otherwise be 18,000 encodes of one frame).
    If the encoder falls behind, frames are dropped (``dropped``) rather than
    piling up in memory. ``close`` (or ``finish`` then ``join``) writes what is
    queued and finalises the file; ``problem`` says if it is incomplete.
    """

    def __init__(self, path: str | os.PathLike, fps: float = 30.0, queue_size: int = 8, clock=time.monotonic,
                 max_repeat_s: float = MAX_REPEAT_S):
        self.path = Path(path)
        self.fps = float(fps)
        self.max_repeat_s = max_repeat_s
        self.written = 0  # frames in the file, repeats included
        self.dropped = 0
        self.error: str | None = None  # one line, if the file could not be written
        self._clock = clock
        self._start = clock()
        self._skipped = 0.0  # seconds of pauses cut out of the file
        self._closing = threading.Event()
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._thread = threading.Thread(target=self._run, name="video recorder", daemon=True)
        self._thread.start()

    def add(self, image: np.ndarray, faces, maps: dict | None = None) -> None:
        """Queue ``image`` (BGR, not modified) with its ``faces`` and their explanation ``maps`` (by track id)."""
        if self._closing.is_set() or not self._thread.is_alive():  # nobody left to encode it
            self.dropped += 1
            return
        try:
            self._queue.put_nowait((self._clock() - self._start, image, list(faces), maps))
        except queue.Full:
            self.dropped += 1

    def finish(self) -> None:
        """Ask the encoder to write what is queued and finalise the file; returns at once (see ``join``)."""
        self._closing.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` s for the encoder to end; True once it has (the file is released)."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def close(self, timeout: float = 5.0) -> bool:
        """``finish`` and ``join``: True once the encoder has ended, failed or not (see ``problem``)."""
        self.finish()
        return self.join(timeout)

    @property
    def problem(self) -> str | None:
        """One line if the file is incomplete (an error, or an encoder still busy), else None."""
        if self.error is not None:
            return self.error
        if self._thread.is_alive() and self._closing.is_set():
            return f"{self.path.name}: the video is still being written and may be incomplete"
        return None

    def _run(self) -> None:
        import cv2

        from fer_desktop.overlay import draw_results

        writer, size = None, None  # size: (height, width) of the file's frames
        max_repeats = max(1, int(round(self.max_repeat_s * self.fps)))
        try:
            while True:
                try:
                    t, image, faces, maps = self._queue.get(timeout=0.1)
                except queue.Empty:
                    if self._closing.is_set():
                        break  # all queued frames are written
                    continue
                if self.error is not None:
                    continue
                out = draw_results(image, faces, maps=maps)  # the window's drawing, at the frame's size
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
                # Repeat this frame up to its time: the file plays at the pace things happened,
                # except that a long pause is cut to max_repeat_s (and later frames keep that cut).
                due = int(round((t - self._skipped) * self.fps)) + 1
                if due > self.written + max_repeats:
                    self._skipped += (due - self.written - max_repeats) / self.fps
                    due = self.written + max_repeats
                due = max(self.written + 1, due)
                while self.written < due:
                    writer.write(out)
                    self.written += 1
        except Exception as exc:  # a full disk, an odd frame: stop writing, keep the app
            log.debug("video recording failed", exc_info=True)
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            self.error = (f"{self.path.name}: video recording stopped ({detail}); "
                          f"the file is incomplete ({self.written} frames)")
        finally:
            if writer is not None:
                writer.release()
