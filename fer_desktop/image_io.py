"""Reading user images robustly: one clear error message or a usable BGR frame."""

import os
from pathlib import Path

import cv2
import numpy as np

# Larger images are shrunk so that detection and drawing stay fast; faces in
# them remain far above the detector's minimum size.
MAX_SIDE = 4096
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".jp2", ".pgm", ".ppm", ".pbm"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"}


class ImageError(Exception):
    """A file that cannot be read as an image; the message is one line for the user."""


def is_video_path(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def to_bgr8(image: np.ndarray) -> np.ndarray:
    """Any decoded image (gray, BGRA, 16-bit, float) -> 3-channel uint8 BGR."""
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype in (np.float32, np.float64):
        image = np.clip(image * 255.0, 0, 255).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise ImageError(f"unsupported pixel type {image.dtype}")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.shape[2] == 1:
        return cv2.cvtColor(image[:, :, 0], cv2.COLOR_GRAY2BGR)
    return image


def read_image(path: str | os.PathLike, max_side: int = MAX_SIDE) -> np.ndarray:
    """Decode an image file to uint8 BGR, EXIF orientation applied.

    Raises ``ImageError`` with a one-line reason for missing, empty, non-image
    or undecodable files.
    """
    path = Path(path)
    try:
        # fromfile + imdecode also handles non-ASCII paths on Windows.
        data = np.fromfile(path, dtype=np.uint8)
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImageError(f"{path}: is a folder, not an image") from None
    except OSError as exc:
        raise ImageError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if data.size == 0:
        raise ImageError(f"{path}: file is empty")
    # IMREAD_ANYDEPTH keeps 16-bit data for a proper scale-down; IMREAD_COLOR
    # applies the EXIF orientation and drops alpha.
    image = cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH)
    if image is None or image.size == 0:
        raise ImageError(f"{path}: not an image, or a damaged one")
    image = to_bgr8(image)
    height, width = image.shape[:2]
    if max(height, width) > max_side:
        scale = max_side / max(height, width)
        image = cv2.resize(image, (max(1, round(width * scale)), max(1, round(height * scale))),
                           interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(image)
