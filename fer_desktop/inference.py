"""The inference thread: newest frame in, every face's smoothed emotions out.

``InferenceWorker`` runs in a thread of its own. Each round it takes the newest
frame of its ``FrameSource`` (frames that arrived meanwhile are skipped), runs
the ``FramePipeline`` (detect, crop, one batched forward pass), tracks and
smooths the faces, and publishes an ``InferenceResult`` through ``on_result``.
It also labels single images for "Open image…" (``submit_image``).

Switching model loads the new classifier in a background thread while the old
one keeps serving (``model_loader.py``: the newest request wins); the worker
swaps them between two frames. Explanation maps, when on, come from
``explanation_maps.py``; results and events are the data classes of
``inference_results.py``.
Failures (missing or corrupt weights, a broken frame, a fault anywhere in a
round, such as in the tracker) become ``WorkerEvent`` messages: the thread
never dies of them. An error that repeats every frame is reported once and
then at most every two seconds with its count, and a ``cleared`` event follows
the first good frame after it.

Every result carries the generation of the source it was labelled from
(``set_source`` starts a new one), so that a result still in flight when the
source changes can be told apart and dropped.

Heavy imports (mediapipe, ONNX Runtime, torch where it serves) happen inside the threads, so creating a
worker is instant and the GUI can show its window first. No Qt here.
"""

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from fer_desktop.explanation_maps import ExplanationMaps
from fer_desktop.inference_results import ImageResult, InferenceResult, WorkerEvent, one_line
from fer_desktop.model_loader import ModelLoader
from fer_desktop.stop_at_exit import stop_at_exit
from fer_desktop.throttle import RepeatThrottle
from fer_desktop.tracking import FaceTracker

__all__ = ["ImageResult", "InferenceResult", "InferenceWorker", "WorkerEvent"]

log = logging.getLogger(__name__)


class _Tiled:
    """A detector adapter that scans tiles: still photos of groups have small faces."""

    def __init__(self, detector) -> None:
        self._detector = detector

    def detect(self, frame):
        return self._detector.detect(frame, tiled=True)


class InferenceWorker:
    """A long-lived thread that labels the newest frame of a source.

    Callbacks run in the worker's threads; keep them short. Every public method
    may be called from any thread.
    """

    def __init__(self, *, model: str | None = None, device: str = "auto", backend: str = "auto",
                 weights_dir=None,
                 on_result: Callable[[InferenceResult], None] | None = None,
                 on_image: Callable[[ImageResult], None] | None = None,
                 on_event: Callable[[WorkerEvent], None] | None = None,
                 smoothing: bool = True, min_confidence: float = 0.5) -> None:
        self.device_preference = device
        self.backend = backend
        self.weights_dir = weights_dir
        self.min_confidence = min_confidence
        self._on_result = on_result
        self._on_image = on_image
        self._on_event = on_event
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._source = None
        self._source_changed = False
        self._source_generation = 0  # bumped by every set_source
        self._images: list[str] = []
        self._classifier = None
        # Late-bound: loads through whatever ``_load_classifier`` is when the load starts.
        self._models = ModelLoader(lambda name: self._load_classifier(name), self._emit, self._wake.set)
        self._frame_errors = RepeatThrottle(interval=2.0)
        self._loop_errors = RepeatThrottle(interval=2.0)  # anything else that fails in a round
        self._tracker = FaceTracker(enabled=smoothing)
        self._maps = ExplanationMaps(self._emit)
        self._thread: threading.Thread | None = None
        self._last_id = 0  # of the last frame taken from the source
        self._last_time: float | None = None  # of the last result
        self._fps = 0.0
        self.results = 0
        if model:
            self.request_model(model)

    # --- control -----------------------------------------------------------------

    def start(self) -> "InferenceWorker":
        if self._thread is not None:
            raise RuntimeError("an InferenceWorker starts once")
        self._thread = threading.Thread(target=self._run, name="inference", daemon=True)
        self._thread.start()
        stop_at_exit(self)
        return self

    def stop(self, timeout: float = 2.0) -> bool:
        """Stop cooperatively; True if the inference thread ended within ``timeout`` s.

        A model still loading stops at its next check (before reading, before its
        warm-up, before being swapped in); it is waited for within the same
        ``timeout``. Reading a model file cannot be interrupted: a loader still
        reading then is abandoned (a daemon thread; the model is discarded when
        the read ends) and does not count against the result. ``loader_running``
        tells whether it is still there.
        """
        deadline = time.monotonic() + timeout
        self._stop.set()
        self._wake.set()
        loader = self._models.stop()
        ok = True
        if self._thread is not None:
            self._thread.join(timeout)
            ok = not self._thread.is_alive()
        if loader is not None:
            loader.join(max(0.0, deadline - time.monotonic()))
            if loader.is_alive():
                log.debug("a model is still loading; abandoned (its result will be discarded)")
        return ok

    @property
    def loader_running(self) -> bool:
        """Whether a model loader thread is alive (loading, or abandoned mid-read after ``stop``)."""
        return self._models.running

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def model_name(self) -> str | None:
        clf = self._classifier
        return clf.name if clf is not None else None

    @property
    def loading(self) -> str | None:
        return self._models.loading

    def set_source(self, source) -> None:
        """Label frames of ``source`` (a ``FrameSource``) from now on; None pauses.

        Starts a new ``source_generation``: results of the previous source still in flight carry the old one.
        """
        with self._lock:
            self._source = source
            self._source_changed = True
            self._source_generation += 1
        self._wake.set()

    @property
    def source_generation(self) -> int:
        """The generation of the current source; results labelled from it carry the same number."""
        return self._source_generation

    def set_smoothing(self, enabled: bool) -> None:
        self._tracker.enabled = bool(enabled)

    @property
    def smoothing(self) -> bool:
        return self._tracker.enabled

    def set_explain(self, method: str | None, interval: float = 0.2) -> None:
        """Explanation maps ("gradcam" or "attention", see ``fer_desktop.explain``) on every face, or None.

        Live maps are recomputed every ``interval`` seconds and follow their face in between.
        """
        self._maps.request(method, interval)

    @property
    def explain(self) -> str | None:
        return self._maps.method

    def submit_image(self, path: "str | Path") -> None:
        """Label a still image (tiled detection; no face -> the whole image); see ``on_image``."""
        with self._lock:
            self._images.append(str(path))
        self._wake.set()

    def request_model(self, name: str) -> None:
        """Load ``name`` in the background; the current model serves until it is ready.

        Requests made while another model loads replace each other: only the newest is loaded next.
        """
        self._models.request(name)

    # --- threads -----------------------------------------------------------------

    def _emit(self, event: WorkerEvent) -> None:
        if event.kind == "error":
            log.warning("%s", event.message)
        if self._on_event is not None:
            try:
                self._on_event(event)
            except Exception:  # a broken listener must not stop inference, nor fail silently
                log.exception("on_event listener failed")

    def _notify(self, callback, value, what: str) -> None:
        if callback is not None:
            try:
                callback(value)
            except Exception:
                log.exception("%s listener failed", what)

    def _load_classifier(self, name: str):
        """``name`` on the device and engine asked for; where that device or engine is not there
        (no CUDA, no PyTorch), says so once and serves from the CPU's default engine instead."""
        from fer_desktop.classifier import EngineUnavailableError, load_classifier

        try:
            return load_classifier(name, device=self.device_preference, weights_dir=self.weights_dir,
                                   backend=self.backend)
        except EngineUnavailableError as exc:
            if self.device_preference in ("auto", "cpu") and self.backend == "auto":
                raise  # nothing left to fall back to
            self._emit(WorkerEvent("info", f"{one_line(exc)}; using the CPU"))
            self.device_preference, self.backend = "cpu", "auto"
            return load_classifier(name, device="cpu", weights_dir=self.weights_dir)

    def _swap_model(self) -> None:
        classifier = self._models.take()
        if classifier is None:
            return
        self._classifier = classifier
        self._tracker.restart_averages()
        where = f"{classifier.device.type}, {classifier.engine}"
        self._emit(WorkerEvent("model", f"{classifier.title} on {where}", model=classifier.name, device=where))
        if getattr(classifier, "notice", None):  # e.g. an ensemble served without its measured weights
            self._emit(WorkerEvent("info", classifier.notice))

    def _run(self) -> None:
        detector = None
        try:
            from fer_desktop.detection import FaceDetector
            from fer_desktop.detection_skipping import SkippingDetector

            # Live video: reuse boxes on frames where faces barely moved
            # (detection_skipping.py); photos still get a full tiled detection.
            detector = SkippingDetector(FaceDetector(min_confidence=self.min_confidence))
        except Exception as exc:
            self._emit(WorkerEvent("error", f"face detector failed to start: {one_line(exc)}"))
        else:
            self._emit(WorkerEvent("ready", "face detector ready"))
        try:
            while not self._stop.is_set():
                try:
                    self._round(detector)
                except Exception as exc:  # e.g. in the tracker: say so, and go on with the next frame
                    log.debug("inference round failed", exc_info=True)
                    message = self._loop_errors(f"inference failed: {one_line(exc)}")
                    if message is not None:
                        self._emit(WorkerEvent("error", message))
                    self._stop.wait(0.05)  # an error that repeats at once must not spin the CPU
        finally:
            if detector is not None:
                detector.close()

    def _round(self, detector) -> None:
        """One round of the loop: swap in a loaded model, label waiting images, then the newest frame."""
        self._swap_model()
        with self._lock:
            images, self._images = self._images, []
            source = self._source
            generation = self._source_generation
            if self._source_changed:
                self._source_changed, self._last_id, self._last_time = False, 0, None
                self._tracker.reset()
                if detector is not None:
                    detector.reset()
        for path in images:
            self._label_image(detector, path)
        if source is None or self._classifier is None or detector is None:
            self._wake.wait(0.1)
            self._wake.clear()
            return
        frame = source.wait_frame(self._last_id, timeout=0.1)
        if frame is None:
            return
        self._last_id = frame.id
        result = self._label_frame(detector, frame)
        if result is None:
            return
        now = time.monotonic()
        if self._last_time is not None and now > self._last_time:
            rate = 1.0 / (now - self._last_time)
            self._fps = rate if self._fps == 0.0 else 0.8 * self._fps + 0.2 * rate
        self._last_time = now
        clf = self._classifier
        self.results += 1
        faces = self._tracker.update(result.faces, now)
        maps = self._maps.for_faces(clf, faces, result)
        out = InferenceResult(
            frame_id=frame.id, frame_size=(frame.image.shape[1], frame.image.shape[0]),
            faces=faces, model=clf.name, device=clf.device.type, timings_ms=result.timings_ms,
            latency_ms=(time.monotonic() - frame.timestamp) * 1e3, fps=self._fps, maps=maps,
            image=frame.image, source_generation=generation)
        if self._loop_errors.active:
            self._loop_errors.reset()
            self._emit(WorkerEvent("cleared", "frames are labelled again"))
        self._notify(self._on_result, out, "on_result")

    def _label_frame(self, detector, frame):
        from fer_desktop.pipeline import FramePipeline

        t0 = time.perf_counter()
        try:
            result = FramePipeline(detector, self._classifier)(frame.image)
        except Exception as exc:
            log.debug("frame %d failed", frame.id, exc_info=True)
            message = self._frame_errors(f"cannot label frames: {one_line(exc)}")
            if message is not None:
                self._emit(WorkerEvent("error", message))
            return None
        if self._frame_errors.active:
            self._frame_errors.reset()
            self._emit(WorkerEvent("cleared", "frames are labelled again"))
        result.timings_ms["total"] = (time.perf_counter() - t0) * 1e3
        return result

    def _label_image(self, detector, path: str) -> None:
        from fer_desktop.image_io import ImageError, read_image
        from fer_desktop.pipeline import FramePipeline, looks_like_face_crop

        name = Path(path).name
        if detector is None:
            result = ImageResult(path, error="the face detector is not available")
        elif self._classifier is None:
            loading = self._models.loading
            why = f"{loading} is still loading" if loading else "no model is loaded"
            result = ImageResult(path, error=f"cannot label {name}: {why}")
        else:
            try:
                image = read_image(path)
                pipeline = FramePipeline(_Tiled(detector), self._classifier)
                # No face found: a photo stays unlabelled; a face crop (a FER-style image) is one face.
                height, width = image.shape[:2]
                frame_result = pipeline(image, whole_image_fallback=looks_like_face_crop(width, height))
                result = ImageResult(path, image=image, faces=frame_result.faces,
                                     whole_image=frame_result.whole_image, model=self._classifier.name,
                                     maps=self._maps.for_image(self._classifier, frame_result.crops))
            except ImageError as exc:
                result = ImageResult(path, error=str(exc))
            except Exception as exc:
                result = ImageResult(path, error=f"{name}: {one_line(exc)}")
        self._notify(self._on_image, result, "on_image")
