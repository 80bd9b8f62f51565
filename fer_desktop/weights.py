"""Trained weights on disk: ``<name>.safetensors`` with a JSON card beside it.

The card says how to rebuild and feed the model (architecture config, input
size, normalisation, class order, test-time augmentation) and how it was made
(recipe, data, accuracy). Tensors are stored as fp16 safetensors: loading never
unpickles anything.
"""

import json
import os
from dataclasses import dataclass
from pathlib import Path

from fer_desktop.emotions import EMOTIONS

CARD_FORMAT = "fer-desktop-weights/1"
ENV_WEIGHTS_DIR = "FER_DESKTOP_WEIGHTS"
_PACKAGE_DIR = Path(__file__).resolve().parent


class WeightsError(Exception):
    """Weights that exist but cannot be used; the message names the file."""


class WeightsNotFoundError(WeightsError):
    """No weights for a model in any weights folder."""


def train_command(name: str) -> str:
    """The command that makes the shipped weights of ``name`` (the ``best`` recipe)."""
    return f"python -m training.train --model {name} --recipe best --data fer2013.npz --export weights/"


def weights_dirs(weights_dir: str | os.PathLike | None = None) -> list[Path]:
    """Folders searched for weights, first match wins.

    An explicit folder, then $FER_DESKTOP_WEIGHTS, then the copy installed inside
    the package (wheels), then ``weights/`` of a source checkout.
    """
    candidates = []
    if weights_dir:
        candidates.append(Path(weights_dir))
    if os.environ.get(ENV_WEIGHTS_DIR):
        candidates.append(Path(os.environ[ENV_WEIGHTS_DIR]))
    candidates += [_PACKAGE_DIR / "_weights", _PACKAGE_DIR.parent / "weights"]
    return [c for c in candidates if c.is_dir()]


def find_weights(name: str, weights_dir: str | os.PathLike | None = None) -> Path | None:
    """The ``.safetensors`` file for model ``name``, or None."""
    for folder in weights_dirs(weights_dir):
        path = folder / f"{name}.safetensors"
        if path.is_file() and path.with_suffix(".json").is_file():
            return path
    return None


def describe_card(card: dict) -> str:
    """One line for users: what a set of weights was measured at and trained with."""
    metrics = card.get("metrics") or {}
    parts = []
    if isinstance(metrics.get("test_accuracy"), (int, float)):
        parts.append(f"{metrics['test_accuracy']:.1%} on FER-2013's PrivateTest")
    parts.append(f"{card.get('input_size', '?')} px input")
    if card.get("epochs"):
        parts.append(f"{card['epochs']} epochs")
    if card.get("init"):
        parts.append(f"from {card['init']}")
    return ", ".join(parts)


def default_model(weights_dir: str | os.PathLike | None = None) -> str | None:
    """The model to use when none is named: of those with weights, the one whose
    card reports the best test accuracy (ties and unknowns: the later, larger
    model); None if no model has weights."""
    from fer_desktop.models.registry import list_models

    best, best_key = None, None
    for rank, name in enumerate(list_models()):
        path = find_weights(name, weights_dir)
        if path is None:
            continue
        try:
            accuracy = float(read_card(path).get("metrics", {}).get("test_accuracy") or 0.0)
        except (WeightsError, TypeError, ValueError):
            accuracy = 0.0
        key = (accuracy, rank)
        if best_key is None or key > best_key:
            best, best_key = name, key
    return best


def read_card(path: str | os.PathLike) -> dict:
    """Read and check the JSON card of a weights file (``x.safetensors`` -> ``x.json``)."""
    card_path = Path(path).with_suffix(".json")
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise WeightsError(f"{card_path}: card missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WeightsError(f"{card_path}: unreadable card ({exc})") from None
    if not isinstance(card, dict) or card.get("format") != CARD_FORMAT:
        raise WeightsError(f"{card_path}: not a fer-desktop weights card")
    missing = [k for k in ("model", "input_size", "mean", "std", "classes") if k not in card]
    if missing:
        raise WeightsError(f"{card_path}: card lacks {', '.join(missing)}")
    if list(card["classes"]) != list(EMOTIONS):
        raise WeightsError(f"{card_path}: class order {card['classes']} differs from {list(EMOTIONS)}")
    return card


@dataclass(frozen=True)
class InferenceSettings:
    """How a card says its model is fed and read: input size and normalisation, then the test-time
    flip, the temperature and the per-emotion shift, which cards written before each existed leave
    out (no flip, T = 1, no shift)."""

    input_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    hflip_tta: bool = False
    temperature: float = 1.0
    class_bias: tuple[float, ...] | None = None

    @classmethod
    def from_card(cls, card: dict) -> "InferenceSettings":
        return cls(input_size=int(card["input_size"]), mean=tuple(card["mean"]), std=tuple(card["std"]),
                   hflip_tta=card.get("test_time_augmentation", "none") == "hflip",
                   temperature=card_temperature(card), class_bias=card_class_bias(card))


def card_temperature(card: dict) -> float:
    """The temperature a card's probabilities are scaled by: fitted on PublicTest (``training.calibrate``,
    ``training.ensemble``), 1.0 on a card never calibrated."""
    return float(card.get("temperature", 1.0))


def card_class_bias(card: dict) -> tuple[float, ...] | None:
    """The shift added to each emotion's logit before the temperature, chosen on PublicTest's macro-F1
    (``training.calibrate``): FER-2013's rare emotions are under-predicted. None where a card has none."""
    bias = card.get("class_bias") or {}
    values = tuple(float(bias.get(name, 0.0)) for name in EMOTIONS)
    return values if any(values) else None


def read_state(path: str | os.PathLike) -> dict:
    """The tensors of a ``.safetensors`` file (as stored, usually fp16)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except FileNotFoundError:
        raise WeightsError(f"{path}: file missing") from None
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise WeightsError(f"{path}: corrupt weights ({exc})") from None


def save_weights(model, card: dict, path: str | os.PathLike, dtype: str = "float16") -> Path:
    """Write ``path`` (.safetensors, fp16 by default) and its JSON card beside it."""
    import torch
    from safetensors.torch import save_file

    path = Path(path).with_suffix(".safetensors")
    path.parent.mkdir(parents=True, exist_ok=True)
    torch_dtype = getattr(torch, dtype)
    state = {
        k: (v.detach().to(torch_dtype) if v.is_floating_point() else v.detach()).contiguous().cpu()
        for k, v in model.state_dict().items()
    }
    save_file(state, str(path), metadata={"format": CARD_FORMAT, "model": str(card.get("model", ""))})
    full_card = {"format": CARD_FORMAT, "classes": list(EMOTIONS), "dtype": dtype, **card}
    path.with_suffix(".json").write_text(json.dumps(full_card, indent=2) + "\n", encoding="utf-8")
    return path
