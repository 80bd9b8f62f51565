"""Frames from a camera or a video file, read in a thread of their own.

``FrameSource`` keeps one slot: the newest frame wins and older ones are
dropped, so a slow consumer never works through a queue of stale frames.
Consumers either wait for a frame newer than the last one they saw
(``wait_frame``) or receive every new frame through ``on_frame``.

Every published frame is a fresh array that nobody writes afterwards (it is
marked read-only), so it may cross threads without a copy.

Video files are paced at their own frame rate and loop: the app shows a file
like a camera that never ends (``loop=False`` ends cleanly with state
``ended``). A file that ends well before the frame count its header declares
(a truncated download or copy) is reported once, with state ``incomplete``,
and the frames it has keep looping. A source that fails to open or stops
delivering (camera busy or unplugged, file removed), or whose reading raises
anything at all (a driver bug, a corrupt frame), is reported through
``on_status`` and reopened with a back-off (``retry_interval``, doubling up to
``max_retry_interval`` while nothing is delivered) until it works again or the
source is stopped: the capture thread itself never dies of an error.

No Qt here: the GUI bridges the callbacks to signals.
"""

import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fer_desktop.stop_at_exit import stop_at_exit

log = logging.getLogger(__name__)

DEFAULT_FPS = 30.0  # for files that do not say, and for the display of cameras that do not
MAX_CAMERA_FAILURES = 10  # consecutive failed reads before a camera counts as disconnected
FRAME_COUNT_TOLERANCE = 2  # frames a file may fall short of its declared count (headers are approximate)


@dataclass(frozen=True)
class Frame:
    id: int  # 1, 2, 3... per source; a loop of a file keeps counting
    image: np.ndarray  # BGR uint8, read-only
    timestamp: float  # time.monotonic() when it was read


@dataclass(frozen=True)
class SourceStatus:
    """What a source is doing, for the user.

    state: ``opening``, ``playing``, ``error`` (cannot open or lost; retrying),
    ``incomplete`` (a file that ended before its declared frame count; it goes
    on looping what it has), ``ended`` (a file without looping) or ``stopped``.
    """

    state: str
    message: str


def parse_source(text: "str | int | os.PathLike") -> "int | Path":
    """``"0"`` -> camera 0; anything else is a video file path."""
    if isinstance(text, int):
        return text
    if isinstance(text, str) and text.strip().isdigit():
        return int(text.strip())
    return Path(text)


def describe_source(source: "int | Path") -> str:
    return f"camera {source}" if isinstance(source, int) else Path(source).name


# Held while a camera is being opened or probed, so that probing the cameras for
# the Source menu never grabs the device the live source is opening.
_camera_open_lock = threading.Lock()


def probe_camera(index: int) -> bool:
    """Whether camera ``index`` opens and delivers a frame (takes up to a second or two); never raises."""
    if sys.platform.startswith("linux") and not os.path.exists(f"/dev/video{index}"):
        return False  # V4L2 cameras are device files: skip OpenCV's noisy failure
    with _camera_open_lock:
        cap = None
        try:
            cap = cv2.VideoCapture(index)
            return bool(cap.isOpened() and cap.read()[0])
        except Exception:
            log.debug("probing camera %d failed", index, exc_info=True)
            return False
        finally:
            if cap is not None:
                cap.release()


class FrameSource:
    """A capture thread over ``cv2.VideoCapture`` for a camera index or a file path.

    ``on_frame(frame)`` and ``on_status(status)`` are called from the capture
    thread; keep them short (store, signal, return).
    """

    def __init__(self, source: "int | str | os.PathLike", *, loop: bool = True,
                 on_frame: Callable[[Frame], None] | None = None,
                 on_status: Callable[[SourceStatus], None] | None = None,
                 retry_interval: float = 1.0, max_retry_interval: float = 8.0,
                 after: "FrameSource | None" = None,
                 open_capture: "Callable[[int | str], cv2.VideoCapture]" = cv2.VideoCapture) -> None:
        self.source = parse_source(source)
        self.is_camera = isinstance(self.source, int)
        self.loop = loop
        self.retry_interval = retry_interval
        self.max_retry_interval = max(max_retry_interval, retry_interval)
        self._open_capture = open_capture  # cv2.VideoCapture; tests wrap it to inject failures
        # A source being replaced: this one opens only once that one has let go of its device,
        # so switching never blocks the caller and never opens a camera still held.
        self._after = after
        self._on_frame = on_frame
        self._on_status = on_status
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self._next_id = 1
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.fps = DEFAULT_FPS
        self.size: tuple[int, int] | None = None  # (width, height) once opened
        self.status = SourceStatus("stopped", "")
        self.frames_read = 0
        self._delivered = 0  # frames delivered since the source was last opened
        self._short_of: tuple[int, int] | None = None  # (read, declared) when a file ended early

    @property
    def name(self) -> str:
        return describe_source(self.source)

    # --- control, from any thread -------------------------------------------------

    def start(self) -> "FrameSource":
        if self._thread is not None:
            raise RuntimeError("a FrameSource starts once")
        self._thread = threading.Thread(target=self._run, name=f"capture {self.name}", daemon=True)
        self._thread.start()
        stop_at_exit(self)
        return self

    def stop(self, timeout: float = 2.0) -> bool:
        """Ask the thread to stop, wait up to ``timeout`` s (0: do not wait); True if it has ended."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def latest(self) -> Frame | None:
        with self._cond:
            return self._frame

    def wait_frame(self, after_id: int = 0, timeout: float | None = None) -> Frame | None:
        """The newest frame with an id above ``after_id``; None on timeout or stop."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._stop.is_set() and (self._frame is None or self._frame.id <= after_id):
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)
            if self._frame is None or self._frame.id <= after_id:
                return None
            return self._frame

    # --- the capture thread ------------------------------------------------------

    def _set_status(self, state: str, message: str) -> None:
        status = SourceStatus(state, message)
        if status == self.status:
            return
        self.status = status
        if self._on_status is not None:
            try:
                self._on_status(status)
            except Exception:  # a broken listener must not kill capture, nor fail silently
                log.exception("on_status listener of %s failed", self.name)

    def _publish(self, image: np.ndarray) -> None:
        image.flags.writeable = False
        with self._cond:
            frame = Frame(self._next_id, image, time.monotonic())
            self._next_id += 1
            self._frame = frame
            self._cond.notify_all()
        self.frames_read += 1
        if self._on_frame is not None:
            try:
                self._on_frame(frame)
            except Exception:
                log.exception("on_frame listener of %s failed", self.name)

    def _open(self) -> "cv2.VideoCapture | None":
        if self.is_camera:
            with _camera_open_lock:
                cap = self._open_capture(self.source)
        else:
            path = Path(self.source)
            if not path.is_file():
                self._set_status("error", f"video file not found: {path.name}")
                return None
            cap = self._open_capture(str(path))
        if not cap.isOpened():
            cap.release()
            if self.is_camera:
                self._set_status("error", f"camera {self.source} not found or busy (in use by another app?); "
                                          "retrying")
            else:
                self._set_status("error",
                                 f"cannot open {Path(self.source).name}: not a video, or a damaged one")
            return None
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and np.isfinite(fps) and 1.0 <= fps <= 240.0 else DEFAULT_FPS
        return cap

    @staticmethod
    def _declared_frames(cap: "cv2.VideoCapture") -> int:
        """The frame count the file's header declares; 0 if it does not say."""
        try:
            count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
        except Exception:
            return 0
        return int(count) if count and np.isfinite(count) and count > 0 else 0

    def retry_delay(self, attempts: int) -> float:
        """Seconds before the next try after ``attempts`` consecutive tries that delivered nothing."""
        return min(self.retry_interval * 2 ** max(attempts - 1, 0), self.max_retry_interval)

    def _wait_for_previous(self) -> None:
        previous, self._after = self._after, None
        if previous is None or previous._thread is None:
            return
        previous.stop(timeout=0)
        while previous._thread.is_alive() and not self._stop.is_set():
            previous._thread.join(0.05)

    def _run(self) -> None:
        self._wait_for_previous()
        reconnecting = False
        looping = False
        attempts = 0  # consecutive tries that delivered no frame: sets the back-off
        try:
            while not self._stop.is_set():
                if not looping and not reconnecting:  # while retrying, the error stays on show
                    self._set_status("opening", f"opening {self.name}…")
                outcome, delivered = self._attempt(reconnecting, looping)
                looping = False
                if self._stop.is_set() or outcome == "stopped":
                    break
                if outcome == "ended":
                    early = None
                    if self._short_of is not None:
                        read, declared = self._short_of
                        early = (f"{self.name} ended early: {read} of {declared} frames could be read "
                                 "(the file is incomplete)")
                    if not self.loop:
                        self._set_status("ended", early or f"{self.name}: end of video")
                        break
                    if early:  # the same status again is not repeated: later loops stay quiet
                        self._set_status("incomplete", early)
                    elif self.status.state == "incomplete":  # the file was completed since
                        self._set_status("playing", f"playing {self.name}")
                    reconnecting, looping, attempts = False, True, 0  # a loop reopens the file quietly
                    continue
                attempts = 1 if delivered else attempts + 1
                reconnecting = True
                if outcome == "lost":  # a camera stopped delivering, or a file broke mid-way
                    what = "disconnected" if self.is_camera else "stopped delivering frames"
                    self._set_status("error", f"{self.name} {what}; trying to reconnect")
                self._stop.wait(self.retry_delay(attempts))
        finally:
            self._set_status("stopped", f"{self.name} closed")
            with self._cond:
                self._cond.notify_all()

    def _attempt(self, reconnecting: bool, looping: bool = False) -> tuple[str, int]:
        """Open and play once: (``stopped``/``ended``/``lost``/``unopened``/``failed``, frames delivered)."""
        cap = None
        self._delivered = 0
        try:
            cap = self._open()
            if cap is None:
                return "unopened", 0
            return self._play(cap, reconnecting, looping), self._delivered
        except Exception as exc:  # anything from OpenCV or a driver: report, back off, retry
            log.exception("capture from %s failed", self.name)
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            self._set_status("error", f"{self.name}: capture failed ({detail}); retrying")
            return "failed", self._delivered
        finally:
            if cap is not None:
                try:
                    cap.release()
                except Exception:
                    log.exception("releasing %s failed", self.name)

    def _play(self, cap: "cv2.VideoCapture", reconnecting: bool, looping: bool = False) -> str:
        """Read frames until stopped (``stopped``), end of file (``ended``) or failure (``lost``).

        At the end of a file, ``_short_of`` is set to (frames read, frames declared) if it ended early.
        """
        period = 1.0 / self.fps
        next_time = time.monotonic()
        failures = 0
        while not self._stop.is_set():
            ok, image = cap.read()
            if not ok or image is None or image.size == 0:
                if not self.is_camera:
                    # A file that ends after playing is a normal end; one that
                    # gives nothing at all was removed or broken.
                    if not self._delivered:
                        return "lost"
                    declared = self._declared_frames(cap)
                    short = declared > self._delivered + FRAME_COUNT_TOLERANCE
                    self._short_of = (self._delivered, declared) if short else None
                    return "ended"
                failures += 1
                if failures >= MAX_CAMERA_FAILURES:
                    return "lost"
                self._stop.wait(0.05)
                continue
            failures = 0
            if self._delivered == 0:
                self.size = (image.shape[1], image.shape[0])
                if reconnecting:
                    self._set_status("playing", f"{self.name} reconnected")
                elif not looping:  # a loop keeps the status of the pass before (incomplete stays said)
                    self._set_status("playing", f"playing {self.name}")
            self._delivered += 1
            if image.ndim == 2 or image.shape[2] != 3 or image.dtype != np.uint8:
                from fer_desktop.image_io import to_bgr8

                image = to_bgr8(image)
            self._publish(image)
            if not self.is_camera:  # cameras pace themselves; files at their own rate
                next_time += period
                delay = next_time - time.monotonic()
                if delay > 0:
                    self._stop.wait(delay)
                elif delay < -period:  # fell behind (a slow disk, a debugger): do not rush
                    next_time = time.monotonic()
        return "stopped"
