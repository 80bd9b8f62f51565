"""One frame in, every face's box and seven probabilities out.

detect -> crop (48x48 FER style) -> one batched forward pass. Used by the GUI's
inference thread, by ``fer-predict`` and by the benchmark, with a timer per stage.
``find`` and ``classify`` are the two halves, for callers that classify the
faces of several frames in one pass (``fer-predict``'s videos).
"""

import time
from dataclasses import dataclass, field

import numpy as np

from fer_desktop.emotions import EMOTIONS
from fer_desktop.preprocessing import Box, crop_faces, whole_image_face


# An image with no detected face is classified as a whole only if it looks like a face
# crop already (FER-2013's are 48x48, RAF-DB's 100x100, AffectNet's 224x224): at most
# FACE_CROP_MAX_SIDE pixels a side and near-square. A tight crop has too little around
# the face for the detector; a photo of anything else would get an emotion it does not have.
FACE_CROP_MAX_SIDE = 256
FACE_CROP_MAX_ASPECT = 1.25  # longer side / shorter side


def looks_like_face_crop(width: int, height: int) -> bool:
    """Whether an image of this size is taken for a face crop (see FACE_CROP_MAX_SIDE)."""
    longer, shorter = max(width, height), min(width, height)
    return 0 < shorter and longer <= FACE_CROP_MAX_SIDE and longer <= FACE_CROP_MAX_ASPECT * shorter


class TopEmotion:
    """``label`` and ``confidence`` of anything with seven ``probs``."""

    probs: np.ndarray

    @property
    def label(self) -> str:
        return EMOTIONS[int(np.argmax(self.probs))]

    @property
    def confidence(self) -> float:
        return float(np.max(self.probs))


@dataclass(frozen=True)
class FaceResult(TopEmotion):
    box: Box
    probs: np.ndarray  # float32 [7], EMOTIONS order


@dataclass
class FrameResult:
    faces: list[FaceResult]
    whole_image: bool = False  # no face was found; the whole image was classified
    timings_ms: dict[str, float] = field(default_factory=dict)
    crops: np.ndarray | None = None  # the uint8 [N, 48, 48] faces the classifier saw (for explanation maps)


@dataclass
class FoundFaces:
    """A frame's faces before classification."""

    boxes: list[Box]
    crops: np.ndarray  # uint8 [N, 48, 48], one per box
    whole_image: bool = False  # no face was found; the crop is the whole image
    timings_ms: dict[str, float] = field(default_factory=dict)  # detect, crop


class FramePipeline:
    """Detector + classifier; ``classifier`` may be swapped between frames.

    ``detect_every=k`` (k > 1) runs the detector on every k-th frame only, or sooner
    when a face moved, and reuses its boxes in between (``fer_desktop.detection_skipping``);
    the classifier still sees every frame. The default, 1, detects on every frame.
    """

    def __init__(self, detector, classifier, detect_every: int = 1) -> None:
        if detect_every > 1:
            from fer_desktop.detection_skipping import SkippingDetector

            detector = SkippingDetector(detector, every=detect_every)
        self.detector = detector
        self.classifier = classifier

    def find(self, frame: np.ndarray, whole_image_fallback: bool = False, tiled: bool = False) -> FoundFaces:
        """Detect and crop: the faces ``classify`` will label (arguments as for calling the pipeline)."""
        t0 = time.perf_counter()
        boxes = self.detector.detect(frame, tiled=tiled) if tiled else self.detector.detect(frame)
        t1 = time.perf_counter()
        whole = False
        if boxes:
            crops = crop_faces(frame, boxes)
        elif whole_image_fallback:
            h, w = frame.shape[:2]
            boxes, crops, whole = [Box(0, 0, w, h, 0.0)], whole_image_face(frame), True
        else:
            crops = crop_faces(frame, [])
        t2 = time.perf_counter()
        return FoundFaces(boxes, crops, whole, {"detect": (t1 - t0) * 1e3, "crop": (t2 - t1) * 1e3})

    def classify(self, found: list[FoundFaces]) -> list[FrameResult]:
        """The faces of every frame in ``found``, labelled in one forward pass."""
        crops = [f.crops for f in found if len(f.crops)]
        if not crops:
            probs = np.zeros((0, len(EMOTIONS)), np.float32)
        else:
            probs = self.classifier.predict(crops[0] if len(crops) == 1 else np.concatenate(crops))
        results, start = [], 0
        for f in found:
            faces = [FaceResult(b, p) for b, p in zip(f.boxes, probs[start:start + len(f.boxes)])]
            results.append(FrameResult(faces, f.whole_image, dict(f.timings_ms), f.crops))
            start += len(f.boxes)
        return results

    def __call__(self, frame: np.ndarray, whole_image_fallback: bool = False, tiled: bool = False) -> FrameResult:
        """``tiled=True`` (photos of groups) also finds small faces; see ``FaceDetector.detect``.

        ``whole_image_fallback``: with no face detected, classify the whole frame as one face
        (``looks_like_face_crop`` says for which images that makes sense).
        """
        found = self.find(frame, whole_image_fallback, tiled)
        t0 = time.perf_counter()
        (result,) = self.classify([found])
        result.timings_ms["infer"] = (time.perf_counter() - t0) * 1e3
        return result
