"""What the pipeline benchmark runs on: the machine it describes, generated videos, and weights.

``write_video`` makes the 640x360 test videos from ``tests/data/astronaut.jpg``;
``WeightsSource`` gives trained weights where they exist and untrained ones built
here for every other model and input size (speed does not depend on the values).
Also used by ``bench/gui.py`` and ``bench/runtime.py``.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import shutil
import sys
from pathlib import Path

import numpy as np

FACE_PHOTO = Path(__file__).resolve().parents[1] / "tests" / "data" / "astronaut.jpg"
MODELS = ("baseline_cnn", "attention_cnn", "resnet50", "resnet50_cbam")



def stats(values_ms) -> dict:
    """Median, 95th percentile and mean of a list of milliseconds."""
    a = np.asarray(values_ms, dtype=np.float64)
    if a.size == 0:
        return {"median": None, "p95": None, "mean": None, "n": 0}
    return {"median": round(float(np.median(a)), 3), "p95": round(float(np.percentile(a, 95)), 3),
            "mean": round(float(a.mean()), 3), "n": int(a.size)}


def median_p95(s: dict | None) -> str:
    """A ``stats`` dict as "median / p95" milliseconds, or "-"."""
    if not s or s.get("median") is None:
        return "-"
    return f"{s['median']:.1f} / {s['p95']:.1f}"


def rss_mb() -> float:
    """Resident memory of this process in MiB (Linux /proc; elsewhere the peak from getrusage)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(devices) -> dict:
    import cv2
    import mediapipe
    import torch

    info = {
        "cpu": cpu_model(),
        "logical_cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "unset"),
        "opencv": cv2.__version__,
        "mediapipe": mediapipe.__version__,
        "numpy": np.__version__,
    }
    with contextlib.suppress(OSError):
        info["cpu_affinity"] = len(os.sched_getaffinity(0))
    if "cuda" in devices:
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
    return info


# ------------------------------------------------------------------ inputs

def write_video(path: Path, faces: int = 1, frames: int = 90, fps: float = 30.0,
                size: tuple[int, int] = (640, 360)) -> Path:
    """An mp4 of ``faces`` copies of the test face photo drifting over a grey background.

    One face is laid out as in the tests (a 180-pixel face, its box about 100
    pixels); several faces share the frame in a grid, each as large as fits, so
    that BlazeFace short-range still finds all of them.
    """
    import cv2

    width, height = size
    photo = cv2.imread(str(FACE_PHOTO), cv2.IMREAD_COLOR)
    if photo is None:
        raise SystemExit(f"cannot read the face photo {FACE_PHOTO}")
    photo = photo[32:173, 65:206]  # framed close around the face, as tests/conftest.py does
    rows = 1 if faces <= 2 else 2
    cols = math.ceil(faces / rows)
    cell_w, cell_h = width // cols, height // rows
    side = 180 if faces == 1 else min(180, cell_w - 20, cell_h - 20)
    face = cv2.resize(photo, (side, side), interpolation=cv2.INTER_AREA)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise SystemExit("OpenCV cannot write mp4v video here")
    for i in range(frames):
        frame = np.full((height, width, 3), 90, np.uint8)
        for k in range(faces):
            if faces == 1:
                x, y = one_face_position(i)
            else:
                cx, cy = (k % cols) * cell_w + cell_w // 2, (k // cols) * cell_h + cell_h // 2
                x = cx - side // 2 + int(8 * np.sin(i / 6 + k))
                y = cy - side // 2 + int(6 * np.cos(i / 7 + k))
            x, y = min(max(0, x), width - side), min(max(0, y), height - side)
            frame[y:y + side, x:x + side] = face if k % 2 == 0 else cv2.flip(face, 1)
        writer.write(frame)
    writer.release()
    return path


def one_face_position(i: int) -> tuple[int, int]:
    """Top-left corner of the face photo in frame ``i`` of the one-face video (the ground truth)."""
    return 20 + int(20 * np.sin(i / 6)), 90 + int(15 * np.cos(i / 7))


def read_frames(path: Path, limit: int | None = None) -> list[np.ndarray]:
    import cv2

    cap = cv2.VideoCapture(str(path))
    frames = []
    while limit is None or len(frames) < limit:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    if not frames:
        raise SystemExit(f"{path}: no frame could be decoded")
    return frames


def make_untrained_weights(folder: Path, name: str, input_size: int, seed: int = 0) -> Path:
    """Untrained weights for ``name`` at ``input_size``, with a card like training writes."""
    import torch

    from fer_desktop.models import create_model
    from fer_desktop.weights import save_weights
    from training.recipes import normalisation

    torch.manual_seed(seed)
    mean, std = normalisation(name)
    card = {"model": name, "architecture": {}, "input_size": int(input_size), "mean": list(mean),
            "std": list(std), "recipe": "untrained (benchmark)", "metrics": {}}
    return save_weights(create_model(name), card, Path(folder) / f"{name}.safetensors")


class WeightsSource:
    """Trained weights where they exist, else untrained ones built in a temporary folder."""

    def __init__(self, tmp: Path, weights_dir: str | None = None) -> None:
        self.tmp = Path(tmp)
        self.weights_dir = weights_dir

    def trained_size(self, name: str) -> int | None:
        from fer_desktop.weights import WeightsError, find_weights, read_card

        path = find_weights(name, self.weights_dir)
        if path is None:
            return None
        try:
            return int(read_card(path)["input_size"])
        except (WeightsError, KeyError, ValueError):
            return None

    def path(self, name: str, size: int) -> tuple[Path, str]:
        """(weights file, 'trained' or 'untrained') for ``name`` at ``size``."""
        from fer_desktop.weights import find_weights

        if self.trained_size(name) == size:
            return find_weights(name, self.weights_dir), "trained"
        folder = self.tmp / f"untrained_{size}"
        path = folder / f"{name}.safetensors"
        if not path.exists():
            make_untrained_weights(folder, name, size)
        return path, "untrained"

    def classifier(self, name: str, size: int, device: str):
        from fer_desktop.classifier import load_classifier

        path, kind = self.path(name, size)
        return load_classifier(name, device=device, weights_path=path), kind

    def folder_for_cli(self, sizes: dict[str, int]) -> tuple[Path, dict[str, str]]:
        """A folder holding one weights file per model, for ``fer-predict --weights-dir``."""
        folder = self.tmp / ("cli_" + "_".join(f"{n}{s}" for n, s in sorted(sizes.items())))
        folder.mkdir(parents=True, exist_ok=True)
        kinds = {}
        for name, size in sizes.items():
            src, kinds[name] = self.path(name, size)
            # The runtime file too, where exported: without it the app would run PyTorch.
            for suffix in (".safetensors", ".json", ".onnx"):
                dst = folder / f"{name}{suffix}"
                if not dst.exists() and src.with_suffix(suffix).exists():
                    shutil.copyfile(src.with_suffix(suffix), dst)
        return folder, kinds
