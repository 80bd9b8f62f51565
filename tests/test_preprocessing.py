"""The one preprocessing path: crops clamped and square, and app == training tensors."""

import numpy as np
import pytest
import torch

from fer_desktop.models import list_models
from fer_desktop.preprocessing import (DEFAULT_MARGIN, DEFAULT_SHIFT_UP, FACE_SIZE, Box, crop_face, crop_faces,
                                       crop_square, faces_to_tensor, whole_image_face)
from training.recipes import normalisation, paper_recipe


def _noise(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


@pytest.mark.parametrize("box", [
    Box(-40, -30, 100, 100),      # past the top-left corner (negative coordinates)
    Box(600, 420, 100, 100),      # past the bottom-right corner
    Box(-500, 200, 80, 60),       # entirely outside on the left
    Box(10, 10, 900, 900),        # larger than the frame
    Box(300, 200, 1, 1),          # a single pixel
    Box(0, 0, 640, 480),          # the whole frame
])
def test_crop_square_is_square_and_inside_the_frame(box):
    x0, y0, x1, y1 = crop_square(box, (480, 640, 3))
    assert 0 <= x0 < x1 <= 640 and 0 <= y0 < y1 <= 480
    assert x1 - x0 == y1 - y0


def test_crop_square_margin_and_shift():
    box = Box(200, 100, 100, 100)
    assert crop_square(box, (480, 640), margin=0.0, shift_up=0.0) == (200, 100, 300, 200)
    x0, y0, x1, y1 = crop_square(box, (480, 640), margin=0.25, shift_up=0.1)
    assert (x1 - x0, y1 - y0) == (150, 150)
    assert (x0 + x1) / 2 == 250 and (y0 + y1) / 2 == 150 - 10  # centred, moved up 0.1 box heights


def test_crop_at_the_edge_is_slid_inside_not_stretched():
    # A face box half out of the frame: the crop keeps its full size, moved inside.
    x0, y0, x1, y1 = crop_square(Box(-50, 100, 100, 100), (480, 640), margin=0.0, shift_up=0.0)
    assert (x0, x1 - x0, y1 - y0) == (0, 100, 100)
    x0, y0, x1, y1 = crop_square(Box(590, 420, 100, 100), (480, 640), margin=0.0, shift_up=0.0)
    assert (x1, y1, x1 - x0) == (640, 480, 100)


@pytest.mark.parametrize("channels", [None, 1, 3, 4])
def test_crop_face_gives_48x48_uint8(channels):
    shape = (240, 320) if channels is None else (240, 320, channels)
    frame = _noise(shape)
    for box in (Box(100, 50, 80, 80), Box(-20, -20, 60, 60), Box(300, 220, 50, 50)):
        face = crop_face(frame, box)
        assert face.shape == (FACE_SIZE, FACE_SIZE) and face.dtype == np.uint8


def test_crop_faces_batch_and_empty():
    frame = _noise((240, 320, 3))
    assert crop_faces(frame, []).shape == (0, 48, 48)
    faces = crop_faces(frame, [Box(10, 10, 50, 50), Box(100, 100, 80, 80)])
    assert faces.shape == (2, 48, 48) and faces.dtype == np.uint8
    np.testing.assert_array_equal(faces[1], crop_face(frame, Box(100, 100, 80, 80)))


def test_whole_image_face_uses_all_of_the_image():
    image = np.zeros((100, 200, 3), np.uint8)
    image[:, :100] = 255  # left half white
    face = whole_image_face(image)
    assert face.shape == (1, 48, 48) and face.dtype == np.uint8
    assert face[0, :, :23].min() == 255 and face[0, :, 25:].max() == 0


@pytest.mark.parametrize("name", list_models())
def test_app_path_equals_training_path(name):
    """A 48x48 face through the app's crop gives the very tensor training computes from it."""
    size, (mean, std) = paper_recipe(name).input_size, normalisation(name)  # the paper's sizes: a resize
    face = _noise((FACE_SIZE, FACE_SIZE), seed=1)
    # The app: a BGR frame that is exactly this face, and a box mapping it 1:1.
    frame = np.repeat(face[:, :, None], 3, axis=2)
    app_face = crop_face(frame, Box(0, 0, FACE_SIZE, FACE_SIZE), margin=0.0, shift_up=0.0)
    np.testing.assert_array_equal(app_face, face)
    app = faces_to_tensor(app_face[None], size, mean, std)
    # Training: FER-2013 faces as a uint8 tensor batch, straight into faces_to_tensor.
    train = faces_to_tensor(torch.from_numpy(face)[None], size, mean, std)
    assert app.shape == (1, 3, size, size) and app.dtype == torch.float32
    assert torch.equal(app, train)


def test_app_path_with_default_margin_on_a_centred_face():
    # With the default margin the box is the face shrunk accordingly: still 1:1.
    face = _noise((FACE_SIZE, FACE_SIZE), seed=2)
    frame = np.repeat(face[:, :, None], 3, axis=2)
    side = FACE_SIZE / (1 + 2 * DEFAULT_MARGIN)
    # Solve for a box whose margin-widened, shifted square is exactly the frame.
    y = FACE_SIZE / 2 + DEFAULT_SHIFT_UP * side - side / 2
    box = Box(round((FACE_SIZE - side) / 2), round(y), round(side), round(side))
    assert crop_square(box, frame.shape) == (0, 0, FACE_SIZE, FACE_SIZE)
    np.testing.assert_array_equal(crop_face(frame, box), face)


def test_faces_to_tensor_normalisation():
    faces = np.array([np.full((48, 48), 0, np.uint8), np.full((48, 48), 255, np.uint8)])
    x = faces_to_tensor(faces, 48, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    assert x.shape == (2, 3, 48, 48)
    assert x[0].max().item() == 0.0 and x[1].min().item() == 1.0
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    x = faces_to_tensor(np.full((1, 48, 48), 51, np.uint8), 224, mean, std)
    assert x.shape == (1, 3, 224, 224)
    for c in range(3):
        expected = (51 / 255 - mean[c]) / std[c]
        assert torch.allclose(x[0, c], torch.full((224, 224), expected), atol=1e-6)
    # Grayscale is copied to all three channels before scaling.
    x = faces_to_tensor(_noise((2, 48, 48)), 128, (0, 0, 0), (1, 1, 1))
    assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 1], x[:, 2])
    assert 0.0 <= x.min().item() and x.max().item() <= 1.0


def test_faces_to_tensor_single_face_and_type_check():
    assert faces_to_tensor(_noise((48, 48)), 64, (0, 0, 0), (1, 1, 1)).shape == (1, 3, 64, 64)
    with pytest.raises(TypeError):
        faces_to_tensor(np.zeros((1, 48, 48), np.float32), 48, (0, 0, 0), (1, 1, 1))
