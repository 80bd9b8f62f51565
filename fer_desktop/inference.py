"""The inference thread: newest frame in, every face's smoothed emotions out.

``InferenceWorker`` runs in a thread of its own. Each round it takes the newest
frame of its ``FrameSource`` (frames that arrived meanwhile are skipped), runs
the ``FramePipeline`` (detect, crop, one batched forward pass), tracks and
smooths the faces, and publishes an ``InferenceResult`` through ``on_result``.
It also labels single images for "Open image…" (``submit_image``).

Switching model loads the new classifier in a background thread while the old
one keeps serving; the worker swaps them between two frames. One loader runs
at a time and the newest request wins: requests made while it loads replace
each other, and a load that is superseded is dropped before its warm-up.
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

import atexit
import logging
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fer_desktop.smoothing import FaceTracker, TrackedFace
from fer_desktop.throttle import RepeatThrottle

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InferenceResult:
    frame_id: int
    frame_size: tuple[int, int]  # (width, height) of the frame the boxes refer to
    faces: list[TrackedFace]
    model: str
    device: str
    timings_ms: dict[str, float]  # detect, crop, infer, total
    latency_ms: float  # from the frame being read to this result
    fps: float  # inference results per second (moving average)
    maps: dict[int, np.ndarray] = field(default_factory=dict)  # track id -> explanation map, when on
    image: np.ndarray | None = field(default=None, repr=False)  # the labelled frame (BGR; do not modify)
    source_generation: int = 0  # InferenceWorker.source_generation when the frame's source was current


@dataclass(frozen=True)
class ImageResult:
    """An "Open image…" result: the image and its faces, or an error message."""

    path: str
    image: np.ndarray | None = None  # BGR uint8, owned by the receiver
    faces: list = field(default_factory=list)  # FaceResult, best first
    whole_image: bool = False  # no face found in a face-crop-sized image: the whole image was classified
    model: str = ""
    error: str | None = None
    maps: np.ndarray | None = None  # [N, 48, 48] explanation maps, one per face, when explaining is on


@dataclass(frozen=True)
class WorkerEvent:
    """``kind``: ``loading`` (a model is loading), ``model`` (a model now serves),
    ``ready`` (face detector up), ``error``, ``cleared`` (frames are labelled again
    after an error) or ``info``; ``message`` is one line."""

    kind: str
    message: str
    model: str | None = None
    device: str | None = None


# The modules the model registry's builders import lazily. They are imported in
# the background once the first model serves, so that the first switch to
# another model does not pay for them: torchvision alone takes over a second,
# which made the first switch to a ResNet miss the one-second target (bench/gui.py).
PRELOAD_MODULES = ("fer_desktop.models.custom_cnn", "fer_desktop.models.resnet")


def _preload_modules() -> None:
    import importlib

    for module in PRELOAD_MODULES:
        try:
            importlib.import_module(module)
        except Exception:  # the switch that needs it reports the error
            log.debug("preloading %s failed", module, exc_info=True)


class _Tiled:
    """A detector adapter that scans tiles: still photos of groups have small faces."""

    def __init__(self, detector) -> None:
        self._detector = detector

    def detect(self, frame):
        return self._detector.detect(frame, tiled=True)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


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
        self._pending = None  # a loaded classifier waiting to be swapped in
        self._generation = 0  # of model requests: only the newest one is swapped in
        self._loading: str | None = None
        self._requested: tuple[str, int] | None = None  # the newest request not yet taken by the loader
        self._loader: threading.Thread | None = None  # at most one, alive while requests are waiting
        self._frame_errors = RepeatThrottle(interval=2.0)
        self._loop_errors = RepeatThrottle(interval=2.0)  # anything else that fails in a round
        self._preloaded = False  # PRELOAD_MODULES imported (after the first model loaded)
        self._tracker = FaceTracker(enabled=smoothing)
        self._explain_request: tuple[str, float] | None = None  # (method, interval) while maps are on
        self._explainer = None  # its LiveExplainer, made in the inference thread (explain imports torch)
        self._explain_errors = RepeatThrottle(interval=2.0)
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
        _running.add(self)
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
        with self._lock:
            self._generation += 1
            self._requested = None
            loader = self._loader
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
        loader = self._loader
        return loader is not None and loader.is_alive()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def model_name(self) -> str | None:
        clf = self._classifier
        return clf.name if clf is not None else None

    @property
    def loading(self) -> str | None:
        return self._loading

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
        from fer_desktop.explain import METHODS  # imports no torch: the GUI thread may call this

        if method is not None and method not in METHODS:
            raise ValueError(f"unknown explanation {method!r}; choose one of {', '.join(METHODS)}")
        self._explain_request = None if method is None else (method, interval)

    @property
    def explain(self) -> str | None:
        request = self._explain_request
        return request[0] if request is not None else None

    def submit_image(self, path: "str | Path") -> None:
        """Label a still image (tiled detection; no face -> the whole image); see ``on_image``."""
        with self._lock:
            self._images.append(str(path))
        self._wake.set()

    def request_model(self, name: str) -> None:
        """Load ``name`` in the background; the current model serves until it is ready.

        Requests made while another model loads replace each other: only the newest is loaded next.
        """
        with self._lock:
            if self._stop.is_set():
                return
            self._generation += 1
            self._requested = (name, self._generation)
            self._loading = name
            loader = None
            if self._loader is None:
                loader = self._loader = threading.Thread(target=self._load_requests, name="model loader",
                                                         daemon=True)
        self._emit(WorkerEvent("loading", f"loading {name}…", model=name))
        if loader is not None:
            loader.start()

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
            self._emit(WorkerEvent("info", f"{_one_line(exc)}; using the CPU"))
            self.device_preference, self.backend = "cpu", "auto"
            return load_classifier(name, device="cpu", weights_dir=self.weights_dir)

    def _load_requests(self) -> None:
        """The loader thread: load the newest request until none is waiting."""
        while True:
            with self._lock:
                request, self._requested = self._requested, None
                if request is None or self._stop.is_set():
                    self._loader = None
                    return
            self._load(*request)

    def _superseded(self, generation: int) -> bool:
        with self._lock:
            return generation != self._generation

    def _load(self, name: str, generation: int) -> None:
        try:
            if self._superseded(generation):
                return  # a newer request or stop came before reading began
            classifier = self._load_classifier(name)
            if self._superseded(generation):
                return  # a newer request or stop came while reading: skip the warm-up
            classifier.predict(np.zeros((1, 48, 48), np.uint8))  # warm-up: the first call is slow
        except Exception as exc:  # WeightsError names the file; anything else in one line
            with self._lock:
                current = generation == self._generation
                if current:
                    self._loading = None
            if current:
                self._emit(WorkerEvent("error", _one_line(exc), model=name))
            return
        with self._lock:
            if generation != self._generation:
                return  # superseded by a newer request, or stopped
            self._pending = classifier
            # Only where PyTorch serves: ONNX Runtime's models need none of that code.
            preload = not self._preloaded and getattr(classifier, "backend", None) == "torch"
            self._preloaded = self._preloaded or preload
        self._wake.set()
        if preload:  # imports only: not joined by stop(), so in a thread of its own
            threading.Thread(target=_preload_modules, name="preload model code", daemon=True).start()

    def _swap_model(self) -> None:
        with self._lock:
            classifier, self._pending = self._pending, None
            if classifier is None:
                return
            self._loading = None
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
            from fer_desktop.tracking import SkippingDetector

            # Live video: reuse boxes on frames where faces barely moved
            # (tracking.py); photos still get a full tiled detection.
            detector = SkippingDetector(FaceDetector(min_confidence=self.min_confidence))
        except Exception as exc:
            self._emit(WorkerEvent("error", f"face detector failed to start: {_one_line(exc)}"))
        else:
            self._emit(WorkerEvent("ready", "face detector ready"))
        try:
            while not self._stop.is_set():
                try:
                    self._round(detector)
                except Exception as exc:  # e.g. in the tracker: say so, and go on with the next frame
                    log.debug("inference round failed", exc_info=True)
                    message = self._loop_errors(f"inference failed: {_one_line(exc)}")
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
        maps = self._live_maps(clf, faces, result)
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
            message = self._frame_errors(f"cannot label frames: {_one_line(exc)}")
            if message is not None:
                self._emit(WorkerEvent("error", message))
            return None
        if self._frame_errors.active:
            self._frame_errors.reset()
            self._emit(WorkerEvent("cleared", "frames are labelled again"))
        result.timings_ms["total"] = (time.perf_counter() - t0) * 1e3
        return result

    def _current_explainer(self):
        """The LiveExplainer for the latest request, or None; made here, in the inference thread."""
        request = self._explain_request
        explainer = self._explainer
        if request is None:
            self._explainer = None
        elif explainer is None or (explainer.method, explainer.interval) != request:
            from fer_desktop.explain import LiveExplainer

            self._explainer = LiveExplainer(*request)
        return self._explainer

    def _live_maps(self, classifier, faces, result) -> dict:
        explainer = self._current_explainer()
        if explainer is None or result.crops is None:
            return {}
        t0 = time.perf_counter()
        try:
            maps = explainer.update(classifier, [f.track_id for f in faces], result.crops, t0)
        except Exception as exc:
            log.debug("explanation failed", exc_info=True)
            message = self._explain_errors(f"cannot explain: {_one_line(exc)}")
            if message is not None:
                self._emit(WorkerEvent("error", message))
            return {}
        if self._explain_errors.active:
            self._explain_errors.reset()
        result.timings_ms["explain"] = (time.perf_counter() - t0) * 1e3
        return maps

    def _image_maps(self, crops) -> np.ndarray | None:
        explainer = self._current_explainer()
        if explainer is None or crops is None or not len(crops):
            return None
        from fer_desktop.explain import explain

        return explain(self._classifier, crops, explainer.method_for(self._classifier))

    def _label_image(self, detector, path: str) -> None:
        from fer_desktop.image_io import ImageError, read_image
        from fer_desktop.pipeline import FramePipeline, looks_like_face_crop

        name = Path(path).name
        if detector is None:
            result = ImageResult(path, error="the face detector is not available")
        elif self._classifier is None:
            why = f"{self._loading} is still loading" if self._loading else "no model is loaded"
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
                                     maps=self._image_maps(frame_result.crops))
            except ImageError as exc:
                result = ImageResult(path, error=str(exc))
            except Exception as exc:
                result = ImageResult(path, error=f"{name}: {_one_line(exc)}")
        self._notify(self._on_image, result, "on_image")


# Threads still running at interpreter exit would be cut off inside OpenCV,
# mediapipe or torch (C++ aborts): stop whatever the program forgot to stop.
_running: "weakref.WeakSet[InferenceWorker]" = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    for item in list(_running):
        item.stop(timeout=2.0)
