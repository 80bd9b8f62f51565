"""Distillation: a trained model's probabilities as a second training target.

A network trained from scratch learns faster when each face also tells it how
a trained model saw it ("this sad face looks a little fearful"), not only its
one label (Hinton et al., 2015). The teacher runs once over the training faces,
through the app's own classifier (its card's input size and test-time
augmentation), and each face's target becomes

    (1 - alpha) * its label (one-hot, or FER+'s vote distribution) + alpha * the teacher's probabilities.

Several teachers act as one: the mean of their probabilities, as the app's
ensemble averages its members. The teachers' pass is kept in the run folder, so
a resumed run does not repeat it (four teachers over FER-2013's training faces
take minutes on a CPU).
"""

import dataclasses
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fer_desktop.emotions import EMOTIONS
from training.data import FaceSplits

Teachers = str | os.PathLike | Sequence[str | os.PathLike]


def _as_list(teachers: Teachers) -> list[str | os.PathLike]:
    return [teachers] if isinstance(teachers, (str, os.PathLike)) else list(teachers)


def teacher_name(teachers: Teachers) -> str:
    """How a card names its teachers: ``baseline_cnn``, or ``baseline_cnn+attention_cnn`` for two."""
    return "+".join(Path(t).stem for t in _as_list(teachers))


def _teachers_key(paths: list, faces: np.ndarray) -> str:
    """What the teachers' probabilities depend on: each teacher's files and the faces."""
    digest = hashlib.sha256(np.ascontiguousarray(faces).tobytes())
    for path in paths:
        for file in (Path(path), Path(path).with_suffix(".json")):
            digest.update(file.read_bytes() if file.is_file() else b"")
    return digest.hexdigest()


def teachers_probabilities(faces: np.ndarray, teachers: Teachers, device: str = "cpu", batch_size: int = 512,
                           cache: str | os.PathLike | None = None) -> np.ndarray:
    """The teachers' mean probabilities for ``faces``, read from ``cache`` when it holds this very pass."""
    from fer_desktop.classifier import load_classifier

    paths = _as_list(teachers)
    key = _teachers_key(paths, faces)
    if cache is not None and Path(cache).is_file():
        with np.load(cache) as kept:
            if str(kept["key"]) == key:
                return kept["probs"]
    probs = np.zeros((len(faces), len(EMOTIONS)), dtype=np.float64)
    for path in paths:
        teacher = load_classifier(weights_path=path, device=device)
        probs += np.concatenate([teacher.predict(faces[i:i + batch_size])
                                 for i in range(0, len(faces), batch_size)])
    probs /= len(paths)
    if cache is not None:  # written whole, then renamed: another process never reads half a file
        part = Path(cache).with_name(f"{Path(cache).name}.{os.getpid()}.part")
        with open(part, "wb") as file:
            np.savez(file, key=key, probs=probs)
        os.replace(part, cache)
    return probs


def with_teacher(data: FaceSplits, teachers: Teachers, alpha: float, device: str = "cpu",
                 batch_size: int = 512, cache: str | os.PathLike | None = None) -> FaceSplits:
    """``data`` with ``train_soft`` mixing its targets and the teachers' mean probabilities by ``alpha``."""
    if not 0.0 < alpha <= 1.0:
        raise ValueError(f"the distillation weight must be in (0, 1], not {alpha}")
    probs = teachers_probabilities(data.train_x.numpy(), teachers, device, batch_size, cache)
    labels = (data.train_soft if data.train_soft is not None
              else F.one_hot(data.train_y, len(EMOTIONS)).float())
    soft = (1.0 - alpha) * labels + alpha * torch.from_numpy(probs).float()
    return dataclasses.replace(data, train_soft=soft)
