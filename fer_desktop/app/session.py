"""The live session: a ``FrameSource`` and an ``InferenceWorker`` bridged to Qt signals.

The core threads call plain callbacks; here they become signals queued to the
GUI thread. Frames and results go through a one-slot mailbox: if the GUI is
busy, a newer frame replaces the waiting one instead of queueing up behind it,
so the display never falls behind the source. Recording happens before the
mailbox, in the inference thread, so that a busy GUI drops no recorded row.

After a source switch, frames and results still in flight from the old source
are dropped: frames carry their source, results the worker's source
generation. A recorder that fails (a full disk) is detached at once, so the
labels go on, and ``recording_failed`` tells the window.
"""

import logging
import threading

import cv2
from PySide6.QtCore import QObject, Signal, Slot

from fer_desktop.capture import FrameSource, SourceStatus
from fer_desktop.inference import InferenceWorker

log = logging.getLogger(__name__)


class _Mailbox:
    """One slot shared across threads; ``notify`` is called when it goes from empty to full."""

    def __init__(self, notify) -> None:
        self._lock = threading.Lock()
        self._value = None
        self._full = False
        self._notify = notify

    def post(self, value) -> None:
        with self._lock:
            self._value = value
            if self._full:
                return
            self._full = True
        self._notify()

    def take(self):
        with self._lock:
            value, self._value, self._full = self._value, None, False
            return value


class LiveSession(QObject):
    """Owns the capture and inference threads; lives in the GUI thread."""

    frame_ready = Signal(object)  # capture.Frame
    result_ready = Signal(object)  # inference.InferenceResult
    image_ready = Signal(object)  # inference.ImageResult
    source_status = Signal(object)  # capture.SourceStatus
    worker_event = Signal(object)  # inference.WorkerEvent
    recording_failed = Signal(object)  # (TimelineRecorder, why): recording stopped; the caller closes it

    _frame_posted = Signal()
    _result_posted = Signal()
    _status_posted = Signal(object, object)  # (source, status)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.source: FrameSource | None = None
        self.worker: InferenceWorker | None = None
        self._source_spec = None
        self._retired: FrameSource | None = None  # the last closed source, perhaps still releasing
        self.open_capture = cv2.VideoCapture  # how sources open devices (tests inject failures here)
        self._pending_images: list = []  # opened before the worker started
        self._explain: str | None = None  # explanation maps: None, "gradcam" or "attention"
        self._recording_lock = threading.Lock()
        self._recorders: tuple = (None, None)  # (TimelineRecorder, AnnotatedVideoRecorder or None)
        self._frames = _Mailbox(self._frame_posted.emit)
        self._results = _Mailbox(self._result_posted.emit)
        # Emitted from the core threads, delivered in this object's (the GUI) thread.
        self._frame_posted.connect(self._deliver_frame)
        self._result_posted.connect(self._deliver_result)
        self._status_posted.connect(self._deliver_status)

    # --- the inference worker --------------------------------------------------------

    def start_worker(self, model: str | None, device: str = "auto", weights_dir=None,
                     smoothing: bool = True, backend: str = "auto") -> None:
        self.worker = InferenceWorker(model=model, device=device, backend=backend, weights_dir=weights_dir,
                                      on_result=self._on_worker_result, on_image=self.image_ready.emit,
                                      on_event=self.worker_event.emit, smoothing=smoothing)
        self.worker.set_source(self.source)
        self.worker.set_explain(self._explain)
        for path in self._pending_images:
            self.worker.submit_image(path)
        self._pending_images.clear()
        self.worker.start()

    # --- recording (called from the GUI thread; rows are written in the inference thread) ---

    def start_recording(self, timeline, video=None) -> None:
        """Every result from now on goes to ``timeline`` (``TimelineRecorder``) and ``video``."""
        with self._recording_lock:
            self._recorders = (timeline, video)

    def stop_recording(self) -> tuple:
        """Detach and return the recorders; the caller closes them."""
        with self._recording_lock:
            recorders, self._recorders = self._recorders, (None, None)
        return recorders

    def _is_current(self, result) -> bool:
        """Whether ``result`` was labelled from the current source (not one replaced since)."""
        worker = self.worker
        return worker is not None and result.source_generation == worker.source_generation

    def _on_worker_result(self, result) -> None:
        if not self._is_current(result):
            return  # in flight while the source changed: neither recorded nor shown
        failed = None
        with self._recording_lock:  # held while writing: close() never cuts a row in half
            timeline, video = self._recorders
            if timeline is not None:
                try:
                    timeline.add(result.frame_id, result.faces, result.model)  # a write error sets .error
                    if video is not None and result.image is not None:
                        video.add(result.image, result.faces, result.maps)
                    why = timeline.error
                except Exception as exc:  # a bug must not stop the labels either
                    log.exception("recording failed")
                    why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                if why is not None:
                    failed, self._recorders = (timeline, why), (None, None)
        if failed is not None:
            self.recording_failed.emit(failed)
        self._results.post(result)

    def request_model(self, name: str) -> None:
        if self.worker is not None:
            self.worker.request_model(name)

    def set_smoothing(self, enabled: bool) -> None:
        if self.worker is not None:
            self.worker.set_smoothing(enabled)

    @property
    def explain(self) -> str | None:
        return self._explain

    def set_explain(self, method: str | None) -> None:
        self._explain = method
        if self.worker is not None:
            self.worker.set_explain(method)

    def open_image(self, path) -> None:
        if self.worker is not None:
            self.worker.submit_image(path)
        else:
            self._pending_images.append(path)

    # --- the frame source ----------------------------------------------------------------

    @property
    def source_spec(self):
        return self._source_spec

    def set_source(self, spec) -> None:
        """Switch to camera index / video path ``spec`` without waiting on the GUI thread.

        The old source is told to stop; the new one opens in its own thread once
        the old one has released its device.
        """
        self.close_source(timeout=0)
        self._source_spec = spec
        source = FrameSource(spec, on_frame=lambda frame: self._frames.post((source, frame)),
                             after=self._retired, open_capture=self.open_capture,
                             on_status=lambda status: self._status_posted.emit(source, status))
        self.source = source
        if self.worker is not None:
            self.worker.set_source(self.source)
        self.source.start()

    def close_source(self, timeout: float = 2.0) -> bool:
        """Stop the source (releasing a camera); the spec is kept for ``resume``."""
        source, self.source = self.source, None
        if self.worker is not None:
            self.worker.set_source(None)
        self._frames.take()
        self._results.take()
        if source is None:
            return True
        self._retired = source  # the next source opens once this one has let go
        return source.stop(timeout)

    def resume(self) -> None:
        if self._source_spec is not None and self.source is None:
            self.set_source(self._source_spec)

    def stop(self, timeout: float = 2.0) -> bool:
        """Stop every thread; True if all ended within ``timeout`` seconds in total."""
        import time

        deadline = time.monotonic() + timeout
        ok = self.close_source(timeout)
        if self._retired is not None:
            ok = self._retired.stop(max(0.0, deadline - time.monotonic())) and ok
        worker, self.worker = self.worker, None
        if worker is not None:
            ok = worker.stop(max(0.05, deadline - time.monotonic())) and ok
        return ok

    # --- delivery in the GUI thread ---------------------------------------------------

    @Slot()
    def _deliver_frame(self) -> None:
        posted = self._frames.take()
        # A frame from a source closed or replaced meanwhile is dropped.
        if posted is not None and posted[0] is self.source:
            self.frame_ready.emit(posted[1])

    @Slot()
    def _deliver_result(self) -> None:
        result = self._results.take()
        if result is not None and self.source is not None and self._is_current(result):
            self.result_ready.emit(result)

    @Slot(object, object)
    def _deliver_status(self, source, status: SourceStatus) -> None:
        if source is self.source:  # not the late "closed" of a source already replaced
            self.source_status.emit(status)
