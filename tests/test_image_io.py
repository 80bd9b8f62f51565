"""Reading user images: every odd file either decodes correctly or gives one clear line."""

import cv2
import numpy as np
import pytest
from PIL import Image

from fer_desktop.image_io import MAX_SIDE, ImageError, is_video_path, read_image


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
