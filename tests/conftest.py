"""Shared test data, all made here: a public-domain face photo, composites and
videos built from it, and untrained weights for the four models.

tests/data/astronaut.jpg is NASA's portrait of Eileen Collins (public domain),
as shipped in scikit-image's ``skimage.data.astronaut``, cropped and shrunk.
"""

import time
from pathlib import Path

import cv2
import numpy as np
import pytest

DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="session", autouse=True)
def ctrl_c_reaches_the_programs_under_test():
    """A shell that starts the suite in the background (``pytest &``) makes it ignore SIGINT, and
    the programs it starts inherit that: Ctrl-C tests would then see no Ctrl-C. Undo it here."""
    import signal

    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        yield
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    else:
        yield
FACE_IMAGE = DATA / "astronaut.jpg"


def load_face_image() -> np.ndarray:
    return cv2.imread(str(FACE_IMAGE), cv2.IMREAD_COLOR)


def make_group_image() -> np.ndarray:
    """960x640 BGR with eight faces of several sizes (the detector finds all eight)."""
    face = load_face_image()
    grid = np.vstack([np.hstack([face, cv2.flip(face, 1)]), np.hstack([cv2.flip(face, 1), face])])
    return np.hstack([grid, cv2.resize(grid, (320, 640))])


def face_patch(side: int = 240) -> np.ndarray:
    """The photo's face with some hair and shoulders, ``side`` pixels square.

    Webcam-like framing: the face is over a quarter of a 360-pixel-high frame,
    well within the range of the short-range detector used for video.
    """
    image = load_face_image()
    cx, cy, half = 136, 103, 90  # centre of the face in the photo, half the patch side
    return cv2.resize(image[cy - half:cy + half, cx - half:cx + half], (side, side),
                      interpolation=cv2.INTER_AREA)


def write_video(path: Path, faces: int = 1, frames: int = 45, fps: float = 15.0,
                size: tuple[int, int] = (640, 360), grey: bool = False) -> Path:
    """An mp4 of ``faces`` (1 or 2) copies of the face drifting over a grey background.

    ``grey``: the face in shades of grey too, so that any colour on screen is an overlay.
    """
    width, height = size
    face = face_patch(240)
    if grey:
        face = cv2.cvtColor(cv2.cvtColor(face, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    assert writer.isOpened(), "OpenCV cannot write mp4v here"
    for i in range(frames):
        frame = np.full((height, width, 3), 90, np.uint8)
        for k in range(faces):
            x = 30 + k * 300 + int(20 * np.sin(i / 6 + k))
            y = 50 + int(15 * np.cos(i / 7 + k))
            frame[y:y + 240, x:x + 240] = face if k % 2 == 0 else cv2.flip(face, 1)
        writer.write(frame)
    writer.release()
    return path


def make_tiny_weights(folder: Path, names=None, seed: int = 0) -> Path:
    """Untrained weights for the models, at small input sizes so CPU tests are quick."""
    import torch

    from fer_desktop.models import create_model, list_models
    from fer_desktop.weights import save_weights
    from training.recipes import normalisation

    torch.manual_seed(seed)
    for name in names or list_models():
        mean, std = normalisation(name)
        card = {
            "model": name,
            "architecture": {},
            "input_size": 48 if "cnn" in name else 64,
            "mean": list(mean),
            "std": list(std),
            "recipe": "untrained (tests)",
            "metrics": {},
        }
        save_weights(create_model(name), card, folder / f"{name}.safetensors")
    return folder


@pytest.fixture
def face_image() -> np.ndarray:
    return load_face_image()


@pytest.fixture
def group_image() -> np.ndarray:
    return make_group_image()


@pytest.fixture(scope="session")
def face_video(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("video") / "one_face.mp4", faces=1)


@pytest.fixture(scope="session")
def group_video(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("video") / "two_faces.mp4", faces=2)


@pytest.fixture(scope="session")
def grey_group_video(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("video") / "two_grey_faces.mp4", faces=2, grey=True)


@pytest.fixture(scope="session")
def tiny_weights_dir(tmp_path_factory) -> Path:
    """All four models, untrained: enough to exercise every code path."""
    return make_tiny_weights(tmp_path_factory.mktemp("weights"))


@pytest.fixture(scope="session")
def cnn_weights_dir(tmp_path_factory) -> Path:
    """Only the two small CNNs: for tests where the ResNets would just be slow."""
    return make_tiny_weights(tmp_path_factory.mktemp("cnn_weights"), ["baseline_cnn", "attention_cnn"])


@pytest.fixture
def no_shipped_weights(tmp_path, monkeypatch):
    """Hide the checkout's and the installed package's weights/ (and $FER_DESKTOP_WEIGHTS):
    only folders a test passes are searched, whatever weights ship."""
    monkeypatch.delenv("FER_DESKTOP_WEIGHTS", raising=False)
    monkeypatch.setattr("fer_desktop.weights._PACKAGE_DIR", tmp_path / "hidden" / "fer_desktop")


def read_video(path: Path) -> list[np.ndarray]:
    """Every frame of a video file (at least one)."""
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    assert frames, f"{path}: no frame"
    return frames


def wait_for(predicate, timeout: float = 10.0) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` seconds pass; its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


class FaultyCapture:
    """A real ``cv2.VideoCapture`` with injected faults: ``read`` raises after ``good`` frames (a driver
    fault), ``release`` takes ``release_delay`` s (a slow driver); opens and releases go to ``log``."""

    def __init__(self, source, good: int = 10**9, release_delay: float = 0.0, log: list | None = None):
        import time

        self._cap, self._left, self._delay, self._log = cv2.VideoCapture(source), good, release_delay, log
        if log is not None:
            log.append(("open", time.monotonic()))

    def __getattr__(self, name):
        return getattr(self._cap, name)

    def read(self):
        if self._left <= 0:
            raise RuntimeError("camera driver fault\nsecond line of the driver's message")
        self._left -= 1
        return self._cap.read()

    def release(self):
        import time

        time.sleep(self._delay)
        self._cap.release()
        if self._log is not None:
            self._log.append(("released", time.monotonic()))


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny batches gain nothing from threads, and on a busy machine spinning threads cost a lot."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
