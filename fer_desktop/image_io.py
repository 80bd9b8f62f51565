"""Reading user images robustly: one clear error message or a usable BGR frame.

The image's size is read from the file's header before anything is decoded, so
a small file that declares a huge image (a decompression bomb) is refused in a
line, and large JPEG photos are decoded at a reduced scale (libjpeg scales while
decoding): memory stays bounded by the working size, not the photo's.
"""

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fer_desktop.preprocessing import Box

# Larger images are shrunk so that detection and drawing stay fast; faces in
# them remain far above the detector's minimum size.
MAX_SIDE = 4096
# Images declaring more pixels are refused before decoding. The largest camera
# sensors give 200 megapixels; a PNG decoded in full at the limit takes 750 MB.
MAX_PIXELS = 250_000_000
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".jp2", ".pgm", ".ppm", ".pbm"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"}
_REDUCED = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}


class ImageError(Exception):
    """A file that cannot be read as an image; the message is one line for the user."""


@dataclass(frozen=True)
class LoadedImage:
    """A decoded image at its working size, and the size of the image in the file."""

    image: np.ndarray  # uint8 BGR, at most MAX_SIDE pixels a side
    original_size: tuple[int, int]  # (width, height) in the file, upright (EXIF orientation applied)

    @property
    def shrunk(self) -> bool:
        return (self.image.shape[1], self.image.shape[0]) != self.original_size

    def to_original(self, box: Box) -> Box:
        """``box`` (in ``image``'s pixels) in the original image's pixels."""
        if not self.shrunk:
            return box
        (width, height), (h, w) = self.original_size, self.image.shape[:2]
        sx, sy = width / w, height / h
        x0, y0 = min(width, round(box.x * sx)), min(height, round(box.y * sy))
        x1, y1 = min(width, round((box.x + box.w) * sx)), min(height, round((box.y + box.h) * sy))
        return Box(x0, y0, x1 - x0, y1 - y0, box.score)


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


# ---------------------------------------------------------------- image headers

def _jpeg_size(data) -> tuple[int, int] | None:
    # Segment by segment up to the frame header: EXIF thumbnails and other metadata can put
    # it well past the first 64 kB, and only the segments' headers are read.
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            i += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, or the scan data without a frame header
            return None
        length = int.from_bytes(data[i + 2:i + 4], "big")
        # SOF0-SOF15 hold the frame's size; C4 (DHT), C8 (JPG) and CC (DAC) are not frames.
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC) and i + 9 <= len(data):
            height, width = struct.unpack(">HH", data[i + 5:i + 9])
            return width, height
        i += 2 + length
    return None


def _tiff_size(data) -> tuple[int, int] | None:
    order = "<" if bytes(data[:2]) == b"II" else ">"
    (offset,) = struct.unpack(order + "I", data[4:8])
    if offset + 2 > len(data):
        return None
    (count,) = struct.unpack(order + "H", data[offset:offset + 2])
    size = {}
    for k in range(count):
        entry = data[offset + 2 + 12 * k:offset + 14 + 12 * k]
        if len(entry) < 12:
            break
        tag, kind = struct.unpack(order + "HH", entry[:4])
        if tag in (256, 257):  # ImageWidth, ImageLength: SHORT (type 3) or LONG
            fmt, field = ("H", entry[8:10]) if kind == 3 else ("I", entry[8:12])
            size[tag] = struct.unpack(order + fmt, field)[0]
    return (size[256], size[257]) if len(size) == 2 else None


def _pnm_size(data: bytes) -> tuple[int, int] | None:
    tokens: list[bytes] = []
    for line in data[2:512].splitlines():
        tokens += line.split(b"#", 1)[0].split()
        if len(tokens) >= 2:
            return int(tokens[0]), int(tokens[1])
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30:
        w, h = struct.unpack("<HH", data[26:30])
        return w & 0x3FFF, h & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    if chunk == b"VP8X" and len(data) >= 30:
        return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
    return None


def image_size(data) -> tuple[int, int] | None:
    """``(width, height)`` as the header of an encoded image (bytes, or a memoryview: nothing is
    copied) declares it, as stored (before any EXIF rotation); None for formats not parsed
    here (OpenCV's own limit, a gigapixel, then applies)."""
    full, data = data, bytes(data[:4096])  # JPEG and TIFF headers may lie further: they get all of it
    try:
        if data[:8] == b"\x89PNG\r\n\x1a\n":
            return struct.unpack(">II", data[16:24])
        if data[:3] == b"\xff\xd8\xff":
            return _jpeg_size(full)
        if data[:6] in (b"GIF87a", b"GIF89a"):
            return struct.unpack("<HH", data[6:10])
        if data[:2] == b"BM":
            if int.from_bytes(data[14:18], "little") == 12:  # OS/2 header: 16-bit sides
                return struct.unpack("<HH", data[18:22])
            w, h = struct.unpack("<ii", data[18:26])
            return abs(w), abs(h)  # a negative height: rows stored top-down
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return _webp_size(data)
        if data[:4] in (b"II*\x00", b"MM\x00*"):
            return _tiff_size(full)
        if data[:1] == b"P" and data[1:2] in b"123456":
            return _pnm_size(data)
        if data[:4] == b"\x59\xa6\x6a\x95":  # Sun raster
            return struct.unpack(">II", data[4:12])
        if data[:12] == b"\x00\x00\x00\x0cjP  \r\n\x87\n":  # JPEG 2000: the ihdr box holds height, width
            at = data.find(b"ihdr", 0, 4096)
            if at > 0:
                h, w = struct.unpack(">II", data[at + 4:at + 12])
                return w, h
        if data[:4] == b"\xff\x4f\xff\x51":  # JPEG 2000 codestream: SIZ holds the sides and offsets
            xs, ys, x0, y0 = struct.unpack(">IIII", data[8:24])
            return xs - x0, ys - y0
    except (struct.error, ValueError):
        return None
    return None


# ---------------------------------------------------------------- reading

def load_image(path: str | os.PathLike, max_side: int = MAX_SIDE,
               max_pixels: int = MAX_PIXELS) -> LoadedImage:
    """Decode an image file to uint8 BGR, EXIF orientation applied, at most ``max_side`` a side.

    Raises ``ImageError`` with a one-line reason for missing, empty, non-image,
    undecodable files, and for images declaring more than ``max_pixels`` pixels.
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
    declared = image_size(memoryview(data))
    if declared is not None and declared[0] * declared[1] > max_pixels:
        w, h = declared
        raise ImageError(f"{path}: declares {w}x{h} pixels ({w * h / 1e6:.0f} megapixels), over the limit of "
                         f"{max_pixels / 1e6:.0f}: refused (a damaged file or a decompression bomb?)")
    # IMREAD_ANYDEPTH keeps 16-bit data for a proper scale-down; IMREAD_COLOR
    # applies the EXIF orientation and drops alpha.
    flags, reduce = cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH, 1
    if declared is not None and data[:3].tobytes() == b"\xff\xd8\xff":
        # A large JPEG is decoded at 1/2, 1/4 or 1/8 of its size (libjpeg does it while decoding,
        # never holding the full image), as long as that still is at least max_side.
        for r in (8, 4, 2):
            if max(declared) // r >= max_side:
                flags, reduce = _REDUCED[r], r
                break
    image = cv2.imdecode(data, flags)
    del data
    if image is None or image.size == 0:
        raise ImageError(f"{path}: not an image, or a damaged one")
    image = to_bgr8(image)
    height, width = image.shape[:2]
    original = (width, height)
    if reduce > 1:
        # The header's sides, turned like the decoded image (EXIF rotation may swap them).
        w, h = declared
        original = (w, h) if abs(w * height - h * width) <= abs(h * height - w * width) else (h, w)
    if max(height, width) > max_side:
        scale = max_side / max(height, width)
        image = cv2.resize(image, (max(1, round(width * scale)), max(1, round(height * scale))),
                           interpolation=cv2.INTER_AREA)
    return LoadedImage(np.ascontiguousarray(image), original)


def read_image(path: str | os.PathLike, max_side: int = MAX_SIDE) -> np.ndarray:
    """``load_image(path).image``: the working-size BGR image alone (boxes found in it are in its pixels)."""
    return load_image(path, max_side).image
