"""The README's pictures of the overlays: a crowded group photo, a close-up and a 4,000 px photo.

    python docs/make_overlay_figures.py [--model ensemble] [--out docs]

Each photo is made from the test photo (NASA's public-domain portrait of Eileen
Collins), labelled by ``fer-predict --annotate`` with the shipped weights, and
written as ``overlay_<name>.jpg``, shrunk to at most 1,200 px wide: the same
renderer draws the window, Snapshot and the recorded video. ``window_group.png``
is the window itself with the group photo open (Qt's offscreen platform).
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TEST_FACE = ROOT / "tests" / "data" / "astronaut.jpg"
MAX_WIDTH = 1200


def face(side: int, mirrored: bool = False) -> np.ndarray:
    """The test photo's face with hair and shoulders, ``side`` px square."""
    cx, cy, half = 136, 103, 90
    patch = cv2.imread(str(TEST_FACE))[cy - half:cy + half, cx - half:cx + half]
    patch = cv2.resize(patch, (side, side), interpolation=cv2.INTER_AREA if side < 2 * half else cv2.INTER_CUBIC)
    return cv2.flip(patch, 1) if mirrored else patch


def photos() -> dict[str, np.ndarray]:
    # Ten faces side by side in two rows, touching: no room beside some of them for bars.
    group = np.vstack([np.hstack([face(200, (i + k) % 2 == 1) for i in range(5)]) for k in range(2)])
    closeup = np.full((480, 640, 3), 90, np.uint8)
    closeup[:, 80:560] = face(480)
    large = np.full((3000, 4000, 3), 120, np.uint8)
    large[200:1400, 300:1500] = face(1200)
    large[1800:2400, 2600:3200] = face(600, mirrored=True)
    return {"group": group, "closeup": closeup, "4000px": large}


def annotate(images: dict[str, np.ndarray], model: str, out: Path) -> list[Path]:
    from fer_desktop.predict_cli import main as fer_predict

    written = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for name, image in images.items():
            paths.append(Path(tmp) / f"{name}.png")
            cv2.imwrite(str(paths[-1]), image)
        if fer_predict([*map(str, paths), "--model", model, "--annotate", tmp]) != 0:
            raise SystemExit("fer-predict failed")
        for name in images:
            picture = cv2.imread(str(Path(tmp) / f"{name}.annotated.png"))
            if picture.shape[1] > MAX_WIDTH:
                height = round(picture.shape[0] * MAX_WIDTH / picture.shape[1])
                picture = cv2.resize(picture, (MAX_WIDTH, height), interpolation=cv2.INTER_AREA)
            written.append(out / f"overlay_{name}.jpg")
            cv2.imwrite(str(written[-1]), picture, [cv2.IMWRITE_JPEG_QUALITY, 88])
    return written


def window_shot(image: np.ndarray, model: str, out: Path) -> Path:
    """The window with ``image`` open as a photo, grabbed once it is labelled."""
    import os

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    from fer_desktop.app.main import build_window, use_pyside_qt_plugins

    use_pyside_qt_plugins()
    app = QApplication.instance() or QApplication([])
    with tempfile.TemporaryDirectory() as tmp:
        path, video = Path(tmp) / "group.png", Path(tmp) / "live.mp4"
        cv2.imwrite(str(path), image)
        writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 15, (640, 360))
        for _ in range(30):  # the live source the photo replaces
            writer.write(np.full((360, 640, 3), 90, np.uint8))
        writer.release()
        window = build_window(["--source", str(video), "--model", model])
        window.resize(1280, 720)
        window.show()
        deadline = time.monotonic() + 60
        while window.session.worker is None or window.session.worker.model_name is None:
            app.processEvents()
            time.sleep(0.02)
            if time.monotonic() > deadline:
                raise SystemExit("the model did not load")
        window.open_image(path)
        while window.last_image_result is None and time.monotonic() < deadline:
            app.processEvents()
            time.sleep(0.02)
        for _ in range(20):
            app.processEvents()
            time.sleep(0.02)
        shot = out / "window_group.png"
        window.grab().save(str(shot))
        window.close()
        app.processEvents()
    return shot


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ensemble")
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    args = parser.parse_args()
    images = photos()
    for path in [*annotate(images, args.model, args.out), window_shot(images["group"], args.model, args.out)]:
        print(path)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
