"""Switching model without a pause: the next classifier loads while the current one serves.

``ModelLoader`` reads and warms up the requested classifier in a background
thread and holds it until its owner (the inference thread) takes it between
two frames. One loader thread runs at a time and the newest request wins:
requests made while it loads replace each other, and a load that is superseded
is dropped before its warm-up. A failure becomes an ``error`` event, reported
only if no newer request came meanwhile.
"""

import importlib
import logging
import threading
from collections.abc import Callable

import numpy as np

from fer_desktop.inference_results import WorkerEvent, one_line

log = logging.getLogger(__name__)

# The modules the model registry's builders import lazily. They are imported in
# the background once the first model serves, so that the first switch to
# another model does not pay for them: torchvision alone takes over a second,
# which made the first switch to a ResNet miss the one-second target (bench/gui.py).
PRELOAD_MODULES = ("fer_desktop.models.custom_cnn", "fer_desktop.models.resnet")


def _preload_modules() -> None:
    for module in PRELOAD_MODULES:
        try:
            importlib.import_module(module)
        except Exception:  # the switch that needs it reports the error
            log.debug("preloading %s failed", module, exc_info=True)


class ModelLoader:
    """Loads requested classifiers in a thread of its own, newest request first.

    ``load(name)`` reads a classifier (it may raise); ``emit`` receives the
    ``loading`` and ``error`` events; ``on_loaded`` is called when a classifier
    waits to be taken (``take``). Every method may be called from any thread.
    """

    def __init__(self, load: Callable[[str], object], emit: Callable[[WorkerEvent], None],
                 on_loaded: Callable[[], None]) -> None:
        self._load_classifier = load
        self._emit = emit
        self._on_loaded = on_loaded
        self._lock = threading.Lock()
        self._stopped = False
        self._pending = None  # a loaded classifier waiting to be taken
        self._generation = 0  # of requests: only the newest one is handed over
        self._loading: str | None = None
        self._requested: tuple[str, int] | None = None  # the newest request not yet taken by the thread
        self._thread: threading.Thread | None = None  # at most one, alive while requests are waiting
        self._preloaded = False  # PRELOAD_MODULES imported (after the first model loaded)

    @property
    def loading(self) -> str | None:
        """The model requested and not yet taken, or None."""
        return self._loading

    @property
    def running(self) -> bool:
        """Whether the loader thread is alive (loading, or abandoned mid-read after ``stop``)."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def request(self, name: str) -> None:
        """Load ``name`` next; a request still waiting is replaced. Nothing after ``stop``."""
        with self._lock:
            if self._stopped:
                return
            self._generation += 1
            self._requested = (name, self._generation)
            self._loading = name
            thread = None
            if self._thread is None:
                thread = self._thread = threading.Thread(target=self._serve_requests, name="model loader",
                                                         daemon=True)
        self._emit(WorkerEvent("loading", f"loading {name}…", model=name))
        if thread is not None:
            thread.start()

    def stop(self) -> threading.Thread | None:
        """Drop every request; a load in progress stops at its next check. Returns the thread to join."""
        with self._lock:
            self._stopped = True
            self._generation += 1
            self._requested = None
            return self._thread

    def take(self) -> object | None:
        """The classifier loaded for the newest request, once; None while there is none."""
        with self._lock:
            classifier, self._pending = self._pending, None
            if classifier is not None:
                self._loading = None
        return classifier

    def _serve_requests(self) -> None:
        """The loader thread: load the newest request until none is waiting."""
        while True:
            with self._lock:
                request, self._requested = self._requested, None
                if request is None or self._stopped:
                    self._thread = None
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
                self._emit(WorkerEvent("error", one_line(exc), model=name))
            return
        with self._lock:
            if generation != self._generation:
                return  # superseded by a newer request, or stopped
            self._pending = classifier
            # Only where PyTorch serves: ONNX Runtime's models need none of that code.
            preload = not self._preloaded and getattr(classifier, "backend", None) == "torch"
            self._preloaded = self._preloaded or preload
        self._on_loaded()
        if preload:  # imports only: not joined by stop(), so in a thread of its own
            threading.Thread(target=_preload_modules, name="preload model code", daemon=True).start()
