"""Detection skipping: run the face detector on some frames only, reuse its boxes between.

On live video a face rarely moves far from one frame to the next, so the boxes
of the last detection serve the following frames as well. ``SkippingDetector``
wraps a ``FaceDetector`` and detects again when

* ``every`` frames have passed since the last detection (new faces are found
  within ``every - 1`` frames),
* a face moved by more than ``max_shift`` of its box, or the picture around it
  changed (it turned, was covered or left), measured by phase correlation on a
  grayscale patch around each face (smaller moves shift the reused box with the face), or
* the frame size changed, or
* no face was found last time (with nobody to classify, detecting costs little).

It has the detector's ``detect(frame, tiled=False)`` signature, so it can stand
in for the detector anywhere. Tiled detection (photos) always runs in full.
``every=1`` detects on every frame, exactly like the plain detector.
"""

import numpy as np

from fer_desktop.preprocessing import Box, to_gray

# Chosen with bench/pipeline.py (bench/RESULTS.md): every 3rd frame cuts the
# detector's time per frame by about three quarters, new faces show up within 2
# frames, and the followed boxes stay as close to the faces as the detector's own
# (its box jitters by about 3 px from frame to frame). Every 5th frame saves
# little more, as moving faces force detections anyway.
DEFAULT_DETECT_EVERY = 3
# A face that moved by more than this fraction of its box since the last
# detection is detected again; smaller moves are followed by shifting the box.
DEFAULT_MAX_SHIFT = 0.08
# Below this phase-correlation response the picture around a face changed too
# much to follow (the face turned, was covered or left): detect again.
MIN_RESPONSE = 0.3
PATCH = 64  # the area around each face is compared as a PATCH x PATCH grayscale patch


class SkippingDetector:
    """A face detector that reuses its last boxes on frames where faces barely moved."""

    def __init__(self, detector, every: int = DEFAULT_DETECT_EVERY,
                 max_shift: float = DEFAULT_MAX_SHIFT) -> None:
        if every < 1:
            raise ValueError("every must be at least 1")
        self.detector = detector
        self.every = int(every)
        self.max_shift = float(max_shift)
        self.detections = 0  # frames the detector really ran on
        self.frames = 0
        self.reset()

    def reset(self) -> None:
        """Forget the last boxes (a new video or camera): the next frame is detected."""
        self._boxes: list[Box] | None = None
        self._refs: list[tuple[tuple[int, int, int, int], np.ndarray]] = []
        self._shape: tuple[int, ...] | None = None
        self._since = 0

    def detect(self, frame: np.ndarray, tiled: bool = False) -> list[Box]:
        if tiled:
            return self.detector.detect(frame, tiled=True)
        self.frames += 1
        if self.every == 1:
            self.detections += 1
            return self.detector.detect(frame)
        followed = None
        if self._boxes and frame.shape == self._shape and self._since + 1 < self.every:
            followed = self._follow(frame)
        if followed is None:
            self._boxes = self.detector.detect(frame)
            self._shape, self._since = frame.shape, 0
            self._refs = [(r, _patch(frame, r)) for r in (_region(b, frame.shape) for b in self._boxes)]
            self.detections += 1
            return list(self._boxes)
        self._since += 1
        return followed

    def _follow(self, frame: np.ndarray) -> list[Box] | None:
        """The last boxes moved with their faces, or None when a face moved too far or changed."""
        import cv2

        height, width = frame.shape[:2]
        window = cv2.createHanningWindow((PATCH, PATCH), cv2.CV_32F)
        moved = []
        for b, (region, before) in zip(self._boxes, self._refs):
            x0, y0, x1, y1 = region
            (dx, dy), response = cv2.phaseCorrelate(before, _patch(frame, region), window)
            dx, dy = dx * (x1 - x0) / PATCH, dy * (y1 - y0) / PATCH  # patch pixels -> frame pixels
            if response < MIN_RESPONSE or max(abs(dx), abs(dy)) > self.max_shift * max(b.w, b.h):
                return None
            x = min(max(0, int(round(b.x + dx))), width - b.w)
            y = min(max(0, int(round(b.y + dy))), height - b.h)
            moved.append(Box(x, y, b.w, b.h, b.score))
        return moved

    def close(self) -> None:
        self.detector.close()

    def __enter__(self) -> "SkippingDetector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _region(box: Box, shape) -> tuple[int, int, int, int]:
    """The box enlarged by half its size a side, clamped to the frame: where the face may move."""
    height, width = shape[:2]
    x0, y0 = max(0, int(box.x - box.w / 2)), max(0, int(box.y - box.h / 2))
    x1, y1 = min(width, int(box.x + 1.5 * box.w)), min(height, int(box.y + 1.5 * box.h))
    return x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)


def _patch(frame: np.ndarray, region) -> np.ndarray:
    import cv2

    x0, y0, x1, y1 = region
    gray = to_gray(frame[y0:y1, x0:x1])
    # A fixed, FFT-friendly size: phaseCorrelate is biased on some odd sizes.
    return cv2.resize(gray, (PATCH, PATCH), interpolation=cv2.INTER_AREA).astype(np.float32)
