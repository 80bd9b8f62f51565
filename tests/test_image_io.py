"""Reading user images: every odd file either decodes correctly or gives one clear line."""

import struct
import tracemalloc
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from fer_desktop.image_io import (MAX_PIXELS, MAX_SIDE, ImageError, image_size, is_video_path, load_image,
                                  read_image)
from fer_desktop.preprocessing import Box


def _check_bgr8(image, shape):
    assert image.dtype == np.uint8 and image.shape == shape and image.flags["C_CONTIGUOUS"]


def _one_line_error(path, *words):
    with pytest.raises(ImageError) as info:
        read_image(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    for word in words:
        assert word in message
    return message


def test_missing_file(tmp_path):
    _one_line_error(tmp_path / "nope.jpg", "no such file")


def test_folder(tmp_path):
    (tmp_path / "album.jpg").mkdir()
    _one_line_error(tmp_path / "album.jpg", "folder")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    _one_line_error(path, "empty")


def test_text_named_jpg(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("this is not a picture\n" * 20)
    _one_line_error(path, "not an image")


def test_truncated_png(tmp_path, face_image):
    data = cv2.imencode(".png", face_image)[1].tobytes()
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) // 2])
    _one_line_error(path)


def test_truncated_jpeg(tmp_path, face_image):
    # libjpeg decodes what is there and fills the rest with grey: a usable image
    # of the right size, or (if the header is cut) a one-line error.
    data = cv2.imencode(".jpg", face_image)[1].tobytes()
    for keep, name in ((len(data) // 2, "half.jpg"), (200, "header.jpg")):
        path = tmp_path / name
        path.write_bytes(data[:keep])
        try:
            image = read_image(path)
        except ImageError as exc:
            assert "\n" not in str(exc) and str(path) in str(exc)
        else:
            _check_bgr8(image, face_image.shape)


def test_rgba_png_drops_alpha(tmp_path):
    rgba = np.zeros((40, 60, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 0  # blue in BGR order, fully transparent
    path = tmp_path / "rgba.png"
    cv2.imwrite(str(path), rgba)
    image = read_image(path)
    _check_bgr8(image, (40, 60, 3))
    assert image[0, 0].tolist() == [200, 0, 0]


def test_16bit_png_is_scaled_to_8bit(tmp_path):
    deep = np.zeros((30, 50, 3), np.uint16)
    deep[..., 2] = 65535  # red
    deep[:, :10, 1] = 32768
    path = tmp_path / "deep.png"
    cv2.imwrite(str(path), deep)
    image = read_image(path)
    _check_bgr8(image, (30, 50, 3))
    assert image[0, 20].tolist() == [0, 0, 255] and image[0, 0].tolist() == [0, 128, 255]


def test_16bit_grayscale_png(tmp_path):
    path = tmp_path / "deep_gray.png"
    cv2.imwrite(str(path), np.full((20, 20), 4096, np.uint16))
    image = read_image(path)
    _check_bgr8(image, (20, 20, 3))
    assert image.max() == image.min() == 16


def test_grayscale_png(tmp_path):
    path = tmp_path / "gray.png"
    cv2.imwrite(str(path), np.full((25, 35), 77, np.uint8))
    image = read_image(path)
    _check_bgr8(image, (25, 35, 3))
    assert (image == 77).all()


def test_exif_rotated_jpeg_is_turned_upright(tmp_path):
    # Stored landscape 80x40 with a red left half; EXIF Orientation 6 says "rotate
    # 90 degrees clockwise to view", so the upright image is 40 wide, 80 tall, red on top.
    stored = np.zeros((40, 80, 3), np.uint8)
    stored[:, :40] = (255, 0, 0)  # RGB red
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "phone.jpg"
    Image.fromarray(stored).save(path, exif=exif, quality=95)
    image = read_image(path)
    _check_bgr8(image, (80, 40, 3))
    top, bottom = image[:35].reshape(-1, 3).mean(0), image[45:].reshape(-1, 3).mean(0)
    assert top[2] > 200 and top[0] < 50  # red (BGR) on top
    assert bottom.max() < 50


def test_very_large_image_is_shrunk(tmp_path):
    big = np.zeros((8000, 10000, 3), np.uint8)
    big[:, :5000] = 255
    path = tmp_path / "poster.png"
    cv2.imwrite(str(path), big, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    del big
    image = read_image(path)
    _check_bgr8(image, (round(8000 * MAX_SIDE / 10000), MAX_SIDE, 3))
    assert image[:, : MAX_SIDE // 2 - 2].min() == 255 and image[:, MAX_SIDE // 2 + 2:].max() == 0


def test_video_suffixes():
    assert is_video_path("clip.MP4") and is_video_path("a/b/c.avi")
    assert not is_video_path("photo.jpg") and not is_video_path("noext")


# ---------------------------------------------------------------- sizes from headers, large images, bombs

@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp", ".webp", ".tiff", ".ppm", ".pgm", ".pbm", ".jp2",
                                 ".sr"])
def test_image_size_reads_each_formats_header(ext):
    image = np.zeros((37, 53, 3), np.uint8)
    ok, data = cv2.imencode(ext, image[..., 0] if ext in (".pgm", ".pbm") else image)
    assert ok
    assert image_size(data.tobytes()) == (53, 37)
    assert image_size(data.tobytes()[:40]) in (None, (53, 37))  # a cut header: no crash, no wrong size


def test_jpeg_size_found_past_large_metadata(tmp_path):
    # Two 60 kB comment segments before the frame header, as large EXIF or XMP blocks put it.
    data = cv2.imencode(".jpg", np.zeros((37, 53, 3), np.uint8))[1].tobytes()
    comment = b"\xff\xfe" + struct.pack(">H", 60002) + b"x" * 60000
    path = tmp_path / "metadata.jpg"
    path.write_bytes(data[:2] + comment * 2 + data[2:])
    assert image_size(path.read_bytes()) == (53, 37)
    assert load_image(path).original_size == (53, 37)
    # The limit holds there too: the frame header made to declare 30000x30000 is refused.
    sof = data.index(b"\xff\xc0")
    path.write_bytes(data[:2] + comment * 2 + data[2:sof + 5] + struct.pack(">HH", 30000, 30000) + data[sof + 9:])
    _one_line_error(path, "30000x30000")


def _png_declaring(width: int, height: int) -> bytes:
    """A small valid PNG whose IHDR is then made to declare width x height (CRC fixed)."""
    data = bytearray(cv2.imencode(".png", np.zeros((8, 8), np.uint8))[1].tobytes())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))  # the CRC covers type and fields
    return bytes(data)


def test_png_declaring_30000x30000_is_refused_before_decoding(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_declaring(30000, 30000))
    assert path.stat().st_size < 200
    message = _one_line_error(path, "30000x30000", "900 megapixels", f"{MAX_PIXELS // 10**6}")
    assert "decompression bomb" in message
    # Up to the limit, the header does not stop it (this one then fails to decode, as damaged).
    small = tmp_path / "fine.png"
    small.write_bytes(_png_declaring(100, 80))
    with pytest.raises(ImageError, match="damaged"):
        read_image(small)


@pytest.fixture(scope="module")
def big_jpeg(tmp_path_factory):
    """A 10000x8000 JPEG (5 MB): a white left half, a black right half."""
    big = np.zeros((8000, 10000, 3), np.uint8)
    big[:, :5000] = 255
    path = tmp_path_factory.mktemp("big") / "poster.jpg"
    cv2.imwrite(str(path), big, [cv2.IMWRITE_JPEG_QUALITY, 80])
    return path


def test_large_jpeg_is_decoded_at_a_reduced_scale(big_jpeg):
    tracemalloc.start()
    try:
        loaded = load_image(big_jpeg)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    _check_bgr8(loaded.image, (3277, MAX_SIDE, 3))
    assert loaded.original_size == (10000, 8000) and loaded.shrunk
    assert loaded.image[:, : MAX_SIDE // 2 - 4].min() > 240 and loaded.image[:, MAX_SIDE // 2 + 4:].max() < 15
    # Decoded in full, the 8-bit BGR image alone is 240 MB; at half size, 60 MB.
    assert peak < 150e6, f"{peak / 1e6:.0f} MB"


def test_boxes_map_back_to_the_original_pixels(big_jpeg, tmp_path):
    loaded = load_image(big_jpeg)
    scale = 10000 / MAX_SIDE
    box = loaded.to_original(Box(1000, 500, 100, 120, 0.9))
    assert abs(box.x - 1000 * scale) <= 1 and abs(box.y - 500 * 8000 / 3277) <= 1
    assert abs(box.w - 100 * scale) <= 2 and abs(box.h - 120 * 8000 / 3277) <= 2 and box.score == 0.9
    whole = loaded.to_original(Box(0, 0, MAX_SIDE, 3277))
    assert (whole.x, whole.y, whole.w, whole.h) == (0, 0, 10000, 8000)
    # Small images are not shrunk: their boxes are kept as they are.
    path = tmp_path / "small.png"
    cv2.imwrite(str(path), np.zeros((30, 40, 3), np.uint8))
    small = load_image(path)
    assert not small.shrunk and small.to_original(Box(1, 2, 3, 4)) == Box(1, 2, 3, 4)


def test_large_exif_rotated_jpeg_keeps_its_upright_size(tmp_path):
    # Stored 9000x4500 (decoded at half size), EXIF "rotate 90 degrees": upright 4500x9000.
    stored = np.zeros((4500, 9000, 3), np.uint8)
    stored[:, :4500] = (255, 0, 0)  # RGB red: on top once upright
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "tall.jpg"
    Image.fromarray(stored).save(path, exif=exif, quality=80)
    del stored
    loaded = load_image(path)
    _check_bgr8(loaded.image, (MAX_SIDE, MAX_SIDE // 2, 3))
    assert loaded.original_size == (4500, 9000)
    assert loaded.image[: MAX_SIDE // 2 - 8, :, 2].min() > 200 and loaded.image[MAX_SIDE // 2 + 8:].max() < 40
