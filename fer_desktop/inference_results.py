"""What the inference thread publishes: frame results, image results and events.

``InferenceWorker`` (``fer_desktop.inference``) sends these through its callbacks.
Plain data, no Qt: the GUI bridges them to signals.
"""

from dataclasses import dataclass, field

import numpy as np

from fer_desktop.tracking import TrackedFace


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


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type where it has none), for a ``WorkerEvent``."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
