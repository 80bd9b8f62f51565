"""The one preprocessing path, shared by the app and by training.

frame + face box --crop_face--> 48x48 uint8 grayscale (the FER-2013 format)
48x48 uint8 faces --faces_to_tensor--> float [N, 3, S, S] scaled as the model declares
                  --faces_to_array---> the same in numpy, for ONNX Runtime (no torch)

Training feeds FER-2013's 48x48 faces straight into ``faces_to_tensor``; the app
first makes such faces with ``crop_face``. Neither imports Qt or mediapipe, and
OpenCV is imported only by the cropping half (and for resizing in numpy), so
training needs just torch and the app's runtime needs no torch.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

FACE_SIZE = 48

# BlazeFace boxes run from the eyebrows to just below the mouth; FER-2013 faces
# are framed from the forehead to the chin. Run on 2,000 FER-2013 training faces,
# BlazeFace's box needs a median margin of 0.08 a side (IQR 0.03-0.15) and a shift
# up of 0.08 box heights to become the FER-2013 frame. With margin 0.1 and shift
# 0.08 the test photo's crop has FER-2013's eye spacing (0.37 vs 0.36 of the side)
# and the best correlation with its mean face; 0.2 or 0.3 add hair and background.
# docs/crops.png shows the crops beside FER-2013's mean face; docs/make_crops_figure.py
# recomputes the numbers.
DEFAULT_MARGIN = 0.1
DEFAULT_SHIFT_UP = 0.08


@dataclass(frozen=True)
class Box:
    """A face box in pixels of the frame it was found in."""

    x: int
    y: int
    w: int
    h: int
    score: float = 1.0


def overlap(a: Box, b: Box) -> tuple[int, int]:
    """(intersection, union) of two boxes' areas, in pixels."""
    x0, y0 = max(a.x, b.x), max(a.y, b.y)
    x1, y1 = min(a.x + a.w, b.x + b.w), min(a.y + a.h, b.y + b.h)
    inter = max(0, x1 - x0) * max(0, y1 - y0)
    return inter, a.w * a.h + b.w * b.h - inter


def iou(a: Box, b: Box) -> float:
    """Intersection over union: 1 for the same box, 0 for boxes apart."""
    inter, union = overlap(a, b)
    return inter / union if union > 0 else 0.0


def crop_square(box: Box, frame_shape: Sequence[int], margin: float = DEFAULT_MARGIN,
                shift_up: float = DEFAULT_SHIFT_UP) -> tuple[int, int, int, int]:
    """The square ``(x0, y0, x1, y1)`` around ``box`` with a margin, clamped to the frame.

    The crop stays square so the face is never stretched: a square that sticks out
    of the frame is slid back inside it, and one larger than the frame's shorter
    side is shrunk to that side.
    """
    height, width = frame_shape[:2]
    side = max(box.w, box.h) * (1.0 + 2.0 * margin)
    side = max(1, min(int(round(side)), height, width))
    cx = box.x + box.w / 2.0
    cy = box.y + box.h / 2.0 - shift_up * box.h
    # Clamp: numpy would silently wrap negative indices to the other edge.
    x0 = min(max(0, int(round(cx - side / 2))), width - side)
    y0 = min(max(0, int(round(cy - side / 2))), height - side)
    return x0, y0, x0 + side, y0 + side


def to_gray(image: np.ndarray) -> np.ndarray:
    """BGR, BGRA or grayscale uint8 -> grayscale uint8."""
    import cv2

    if image.ndim == 2:
        return image
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    if image.shape[2] == 1:
        return image[:, :, 0]
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


def crop_face(frame: np.ndarray, box: Box, margin: float = DEFAULT_MARGIN,
              shift_up: float = DEFAULT_SHIFT_UP) -> np.ndarray:
    """Cut one face out of a BGR (or grayscale) frame as a 48x48 uint8 FER-style face."""
    import cv2

    x0, y0, x1, y1 = crop_square(box, frame.shape, margin, shift_up)
    patch = to_gray(frame[y0:y1, x0:x1])
    # INTER_AREA averages when shrinking, so small faces do not alias.
    return cv2.resize(patch, (FACE_SIZE, FACE_SIZE), interpolation=cv2.INTER_AREA)


def crop_faces(frame: np.ndarray, boxes: Sequence[Box], margin: float = DEFAULT_MARGIN,
               shift_up: float = DEFAULT_SHIFT_UP) -> np.ndarray:
    """All faces of a frame as one ``[N, 48, 48]`` uint8 array."""
    if not boxes:
        return np.empty((0, FACE_SIZE, FACE_SIZE), np.uint8)
    return np.stack([crop_face(frame, b, margin, shift_up) for b in boxes])


def whole_image_face(image: np.ndarray) -> np.ndarray:
    """The whole image as one face (used when no face is detected): ``[1, 48, 48]``.

    All of it, squeezed to a square, as the fallback promises.
    """
    import cv2

    face = cv2.resize(to_gray(image), (FACE_SIZE, FACE_SIZE), interpolation=cv2.INTER_AREA)
    return face[None]


def faces_to_tensor(faces, input_size: int, mean: Sequence[float], std: Sequence[float], device=None,
                    dtype=None):
    """uint8 faces ``[N, 48, 48]`` (numpy or tensor) -> float ``[N, 3, S, S]`` model input.

    Resize (bilinear), grayscale copied to three channels, values in [0, 1], then
    ``(x - mean) / std``. Runs on ``device``, so training can do it batch-wise on a GPU.
    """
    import torch
    import torch.nn.functional as F

    x = torch.as_tensor(faces, device=device)
    if x.dtype != torch.uint8:
        raise TypeError(f"faces must be uint8, got {x.dtype}")
    if x.ndim == 2:
        x = x[None]
    if x.ndim == 3:
        x = x[:, None]
    x = x.float().div_(255.0)
    if x.shape[-1] != input_size or x.shape[-2] != input_size:
        x = F.interpolate(x, size=(input_size, input_size), mode="bilinear", align_corners=False)
    x = x.expand(-1, 3, -1, -1)
    mean_t = torch.tensor(mean, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    std_t = torch.tensor(std, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    x = (x - mean_t) / std_t
    return x if dtype is None else x.to(dtype)


def face_batch(faces) -> np.ndarray:
    """uint8 faces as ``[N, 48, 48]`` (one face ``[48, 48]`` becomes a batch of one), or ValueError."""
    faces = np.asarray(faces)
    if faces.ndim == 2:
        faces = faces[None]
    if faces.ndim != 3 or tuple(faces.shape[1:]) != (FACE_SIZE, FACE_SIZE):
        raise ValueError(f"faces must be [N, 48, 48] uint8, got shape {tuple(faces.shape)}")
    return faces


def faces_to_array(faces, input_size: int, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """``faces_to_tensor`` in numpy: uint8 ``[N, 48, 48]`` -> float32 ``[N, 3, S, S]``.

    The same steps (tests hold the two within 1e-4): bilinear resize with
    half-pixel centres (OpenCV's INTER_LINEAR is torch's ``align_corners=False``),
    [0, 1], three channels, ``(x - mean) / std``.
    """
    x = np.asarray(faces)
    if x.dtype != np.uint8:
        raise TypeError(f"faces must be uint8, got {x.dtype}")
    if x.ndim == 2:
        x = x[None]
    x = x.astype(np.float32) * np.float32(1 / 255)
    if x.shape[-1] != input_size or x.shape[-2] != input_size:
        import cv2

        x = np.stack([cv2.resize(f, (input_size, input_size), interpolation=cv2.INTER_LINEAR) for f in x])
    mean_a = np.asarray(mean, np.float32).reshape(1, 3, 1, 1)
    std_a = np.asarray(std, np.float32).reshape(1, 3, 1, 1)
    return np.ascontiguousarray((x[:, None] - mean_a) / std_a, dtype=np.float32)
