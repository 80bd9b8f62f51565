"""Face detection with MediaPipe's Tasks API and the bundled BlazeFace model.

The model file ships inside the package, so detection works offline. Only this
module imports mediapipe.
"""

from pathlib import Path

import cv2
import numpy as np

from fer_desktop.preprocessing import Box

TILE_MIN_SCORE = 0.75  # tiles see more non-face texture close up: be stricter
MIN_TILE = 160  # smallest tile side scanned in tiled mode, in pixels
MODEL_PATH = Path(__file__).resolve().parent / "assets" / "face_detection_short_range.tflite"


class FaceDetector:
    """Finds every face in a BGR frame and returns their boxes, best first.

    Use it as a context manager, or call ``close()``: MediaPipe's own finaliser
    fails noisily at interpreter exit.
    """

    def __init__(self, min_confidence: float = 0.5, model_path: str | Path = MODEL_PATH) -> None:
        import mediapipe as mp
        from mediapipe.tasks.python import BaseOptions, vision

        self._mp = mp
        options = vision.FaceDetectorOptions(
            base_options=BaseOptions(model_asset_path=str(model_path)),
            running_mode=vision.RunningMode.IMAGE,
            min_detection_confidence=min_confidence,
        )
        self._detector = vision.FaceDetector.create_from_options(options)

    def detect(self, frame: np.ndarray, tiled: bool = False) -> list[Box]:
        """Boxes of all faces in a BGR, BGRA or grayscale uint8 frame, best first.

        BlazeFace short-range sees the frame at 128x128, so faces smaller than about
        a fifth of the frame are missed. ``tiled=True`` (for photos of groups) also
        scans overlapping tiles at several scales and merges the boxes.
        """
        if not tiled:
            return self._detect_once(frame)
        height, width = frame.shape[:2]
        boxes = self._detect_once(frame)
        side = min(height, width)
        for _ in range(3):
            side //= 2
            if side < MIN_TILE:
                break
            step = side // 2
            for y in _starts(height, side, step):
                for x in _starts(width, side, step):
                    for b in self._detect_once(frame[y:y + side, x:x + side]):
                        # A box touching an inner tile edge is a cut face: its
                        # whole shows up in a neighbouring tile.
                        cut = ((b.x <= 1 and x > 0) or (b.y <= 1 and y > 0)
                               or (b.x + b.w >= side - 1 and x + side < width)
                               or (b.y + b.h >= side - 1 and y + side < height))
                        if not cut and b.score >= TILE_MIN_SCORE:
                            boxes.append(Box(b.x + x, b.y + y, b.w, b.h, b.score))
        return merge_boxes(boxes)

    def _detect_once(self, frame: np.ndarray) -> list[Box]:
        if frame.ndim == 2:
            rgb = cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
        elif frame.shape[2] == 4:
            rgb = cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB)
        else:
            rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        image = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))
        result = self._detector.detect(image)
        height, width = frame.shape[:2]
        boxes = []
        for det in result.detections:
            bb = det.bounding_box
            x0, y0 = max(0, bb.origin_x), max(0, bb.origin_y)
            x1, y1 = min(width, bb.origin_x + bb.width), min(height, bb.origin_y + bb.height)
            if x1 - x0 < 4 or y1 - y0 < 4:
                continue
            score = det.categories[0].score if det.categories else 0.0
            boxes.append(Box(x0, y0, x1 - x0, y1 - y0, float(score)))
        return sorted(boxes, key=lambda b: -b.score)

    def close(self) -> None:
        if self._detector is not None:
            self._detector.close()
            self._detector = None

    def __enter__(self) -> "FaceDetector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: mediapipe's internals may be gone
            pass


def _starts(length: int, side: int, step: int) -> list[int]:
    """Tile offsets covering ``length`` with tiles of ``side``, the last flush with the end."""
    starts = list(range(0, max(length - side, 0) + 1, step))
    if starts[-1] + side < length:
        starts.append(length - side)
    return starts


def _iou_or_containment(a: Box, b: Box) -> float:
    x0, y0 = max(a.x, b.x), max(a.y, b.y)
    x1, y1 = min(a.x + a.w, b.x + b.w), min(a.y + a.h, b.y + b.h)
    inter = max(0, x1 - x0) * max(0, y1 - y0)
    smaller = min(a.w * a.h, b.w * b.h)
    union = a.w * a.h + b.w * b.h - inter
    # A face cut by a tile edge gives a small box inside the full one: treat
    # containment like overlap.
    return max(inter / union, inter / smaller * 0.8) if union else 0.0


def merge_boxes(boxes: list[Box], threshold: float = 0.4) -> list[Box]:
    """Greedy non-maximum suppression: keep the best box of each overlapping group."""
    kept: list[Box] = []
    for box in sorted(boxes, key=lambda b: -b.score):
        if all(_iou_or_containment(box, k) < threshold for k in kept):
            kept.append(box)
    return kept
