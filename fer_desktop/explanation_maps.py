"""The inference thread's explanation maps: which method is asked for, and the maps it gives.

The request may change from any thread (``request``); the ``LiveExplainer`` that
serves it is made in the inference thread, because ``fer_desktop.explain`` imports
torch only when a map is computed. A failing map is reported through ``emit``,
rate-limited like every error that can repeat each frame, and the frame goes
on without maps.
"""

import logging
import time
from collections.abc import Callable

import numpy as np

from fer_desktop.inference_results import WorkerEvent, one_line
from fer_desktop.throttle import RepeatThrottle

log = logging.getLogger(__name__)


class ExplanationMaps:
    def __init__(self, emit: Callable[[WorkerEvent], None]) -> None:
        self._emit = emit
        self._request: tuple[str, float] | None = None  # (method, interval) while maps are on
        self._explainer = None  # its LiveExplainer, made in the inference thread
        self._errors = RepeatThrottle(interval=2.0)

    def request(self, method: str | None, interval: float = 0.2) -> None:
        """Maps by ``method`` ("gradcam" or "attention") from now on, or none."""
        from fer_desktop.explain import METHODS  # imports no torch: the GUI thread may call this

        if method is not None and method not in METHODS:
            raise ValueError(f"unknown explanation {method!r}; choose one of {', '.join(METHODS)}")
        self._request = None if method is None else (method, interval)

    @property
    def method(self) -> str | None:
        request = self._request
        return request[0] if request is not None else None

    def _current_explainer(self):
        """The LiveExplainer for the latest request, or None; made here, in the inference thread."""
        request = self._request
        explainer = self._explainer
        if request is None:
            self._explainer = None
        elif explainer is None or (explainer.method, explainer.interval) != request:
            from fer_desktop.explain import LiveExplainer

            self._explainer = LiveExplainer(*request)
        return self._explainer

    def for_faces(self, classifier, faces, result) -> dict:
        """Track id -> map for the tracked ``faces`` of a ``FrameResult``; adds its ``explain`` timing."""
        explainer = self._current_explainer()
        if explainer is None or result.crops is None:
            return {}
        t0 = time.perf_counter()
        try:
            maps = explainer.update(classifier, [f.track_id for f in faces], result.crops, t0)
        except Exception as exc:
            log.debug("explanation failed", exc_info=True)
            message = self._errors(f"cannot explain: {one_line(exc)}")
            if message is not None:
                self._emit(WorkerEvent("error", message))
            return {}
        if self._errors.active:
            self._errors.reset()
        result.timings_ms["explain"] = (time.perf_counter() - t0) * 1e3
        return maps

    def for_image(self, classifier, crops) -> np.ndarray | None:
        """One map per face crop of a still image, or None when maps are off."""
        explainer = self._current_explainer()
        if explainer is None or crops is None or not len(crops):
            return None
        from fer_desktop.explain import explain

        return explain(classifier, crops, explainer.method_for(classifier))
