"""The ensemble: every trained model at once, their probabilities (or calibrated logits) averaged.

``load_classifier("ensemble")`` loads each model that has weights (at least
two) and returns an ``EnsembleClassifier``, which predicts like a single
``Classifier``. Its members are weighted equally, unless an ``ensemble.json``
in the weights folder, written by ``python -m training.ensemble``, gives
weights chosen on PublicTest; that file also holds the ensemble's measured
accuracy. No Qt here.
"""

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from fer_desktop.emotions import EMOTIONS

ENSEMBLE = "ensemble"
ENSEMBLE_TITLE = "All models (ensemble)"
CARD_NAME = "ensemble.json"
COMBINE = ("probabilities", "logits")


def model_title(name: str) -> str:
    """What users read for ``name``: a registered model's title, or the ensemble's."""
    if name == ENSEMBLE:
        return ENSEMBLE_TITLE
    from fer_desktop.models.registry import get_spec

    return get_spec(name).title


def model_names() -> list[str]:
    """Every name ``load_classifier`` accepts: the four models and the ensemble."""
    from fer_desktop.models.registry import list_models

    return [*list_models(), ENSEMBLE]


def trained_models(weights_dir=None) -> list[str]:
    from fer_desktop.models.registry import list_models
    from fer_desktop.weights import find_weights

    return [name for name in list_models() if find_weights(name, weights_dir) is not None]


def find_card(weights_dir=None) -> Path | None:
    from fer_desktop.weights import weights_dirs

    for folder in weights_dirs(weights_dir):
        if (folder / CARD_NAME).is_file():
            return folder / CARD_NAME
    return None


def read_ensemble_card(weights_dir=None) -> dict:
    """The ``ensemble.json`` found first in the weights folders, or {} (equal weights, not measured).

    An unreadable one gives ``{"problem": "<one line>"}``: the ensemble still serves, with equal
    weights, and says why (``EnsembleClassifier.notice``) rather than refuse to serve.
    """
    path = find_card(weights_dir)
    if path is None:
        return {}
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return {"problem": f"{path} is unreadable ({reason}); the models are weighted equally"}
    if not isinstance(card, dict):
        return {"problem": f"{path} is not an ensemble card; the models are weighted equally"}
    return card


class EnsembleClassifier:
    """The weighted mean of several classifiers' probabilities; ``predict`` as ``Classifier.predict``."""

    name = ENSEMBLE
    title = ENSEMBLE_TITLE

    def __init__(self, members: list, weights: list[float] | None = None, card: dict | None = None,
                 notice: str | None = None) -> None:
        if len(members) < 2:
            raise ValueError("an ensemble needs at least two models")
        weights = [1.0] * len(members) if weights is None else [float(w) for w in weights]
        if len(weights) != len(members) or min(weights) < 0 or sum(weights) <= 0:
            raise ValueError("one non-negative weight per member, not all zero")
        self.members = members
        self.weights = np.asarray(weights, np.float32) / sum(weights)
        self.device = members[0].device
        self.engine = members[0].engine
        self.card = {"model": ENSEMBLE, "members": [m.name for m in members],
                     "weights": dict(zip([m.name for m in members], self.weights.round(4).tolist())),
                     **{k: v for k, v in (card or {}).items()
                        if k in ("metrics", "chosen_on", "temperature", "combine", "class_bias")}}
        # The mean of calibrated members is under-confident: its own temperature, fitted on PublicTest
        # (training.ensemble), sharpens it again (p ** (1 / T), renormalised).
        from fer_desktop.weights import card_temperature  # here: fer-predict's start never reads weights

        self.temperature = card_temperature(self.card)
        # "probabilities": the weighted mean of the members' probabilities; "logits": the weighted
        # mean of their calibrated logits (log-probabilities), i.e. a normalised geometric mean.
        self.combine = self.card.get("combine", "probabilities")
        if self.combine not in COMBINE:
            raise ValueError(f"unknown ensemble combination {self.combine!r}; expected one of {COMBINE}")
        # Added to the log-probabilities before the temperature: a per-emotion shift chosen on
        # PublicTest's macro-F1 (training.ensemble), which lifts the rare emotions (disgust, fear).
        bias = self.card.get("class_bias") or {}
        self.class_bias = np.array([float(bias.get(name, 0.0)) for name in EMOTIONS], np.float64)
        self.notice = notice  # one line for the user when the weights are not the measured ones

    def predict(self, faces) -> np.ndarray:
        member_probs = [(w, m.predict(faces)) for m, w in zip(self.members, self.weights) if w > 0]
        return combine(member_probs, self.combine, self.temperature, self.class_bias)


def combine(weighted_probs: list, how: str = "probabilities", temperature: float = 1.0,
            class_bias: np.ndarray | None = None) -> np.ndarray:
    """The ensemble's probabilities from ``[(weight, probs [N, 7]), ...]`` (weights summing to 1)."""
    if how == "logits":
        logp = np.sum([w * np.log(np.clip(p, 1e-12, None)) for w, p in weighted_probs], axis=0)
        e = np.exp(logp - logp.max(axis=1, keepdims=True))
        probs = e / e.sum(axis=1, keepdims=True)
    else:
        probs = np.sum([w * p for w, p in weighted_probs], axis=0)
    return sharpen(shift(probs, class_bias), temperature).astype(np.float32)


def shift(probs: np.ndarray, class_bias: np.ndarray | None) -> np.ndarray:
    """``softmax(log(probs) + class_bias)``: probabilities with each emotion's prior moved."""
    if class_bias is None or not np.any(class_bias):
        return probs
    p = np.clip(probs, 1e-12, None) * np.exp(class_bias - np.max(class_bias))
    return p / p.sum(axis=1, keepdims=True)


def sharpen(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Temperature scaling of probabilities: ``softmax(log(p) / T)``."""
    if temperature == 1.0:
        return probs
    logp = np.log(np.clip(probs, 1e-12, None)) / temperature
    e = np.exp(logp - logp.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def load_ensemble(load_member: Callable[[str], object], weights_dir=None) -> EnsembleClassifier:
    """The ensemble of every model with weights in ``weights_dir``; ``load_member(name)`` loads
    one of them (the caller's ``load_classifier``, on the device and engine it was asked for)."""
    from fer_desktop.weights import WeightsNotFoundError

    names = trained_models(weights_dir)
    if len(names) < 2:
        raise WeightsNotFoundError(f"the ensemble needs at least two trained models; found {len(names)}"
                                   + (f" ({names[0]})" if names else ""))
    members = [load_member(name) for name in names]
    card = read_ensemble_card(weights_dir)
    # Weights chosen for other members, or for other weights of them (a model retrained
    # since), do not apply: equal weights then, and no measured accuracy.
    current = {m.name: (m.card.get("metrics") or {}).get("val_accuracy") for m in members}
    weights = [card["weights"][m.name] for m in members] if card_applies(card, current) else None
    notice = card.get("problem")
    if weights is None and notice is None and card:
        notice = (f"{find_card(weights_dir)} was measured for other weights of its models "
                  "(python -m training.ensemble measures it again); the models are weighted equally")
    return EnsembleClassifier(members, weights, card if weights is not None else {}, notice)


def card_applies(card: dict, current: dict) -> bool:
    """Whether ``ensemble.json`` was written for exactly these members as their cards now stand;
    ``current``: each member's name -> the PublicTest accuracy its card states."""
    chosen, measured = card.get("weights"), card.get("members")
    if not isinstance(chosen, dict) or not isinstance(measured, dict):
        return False
    if set(chosen) != set(current) or set(measured) != set(current):
        return False
    return all(isinstance(measured[n], dict) and measured[n].get("card_val_accuracy") == current[n]
               for n in current)


def describe_ensemble(weights_dir=None) -> str:
    """One line for users, like ``weights.describe_card``."""
    from fer_desktop.weights import WeightsError, find_weights, read_card

    names = trained_models(weights_dir)
    card = read_ensemble_card(weights_dir)
    text = f"the mean of {len(names)} models' probabilities ({', '.join(names)})"
    try:
        current = {n: (read_card(find_weights(n, weights_dir)).get("metrics") or {}).get("val_accuracy")
                   for n in names}
    except WeightsError:
        return text
    accuracy = (card.get("metrics") or {}).get("test_accuracy")
    if card_applies(card, current) and isinstance(accuracy, (int, float)):
        text = f"{accuracy:.1%} on FER-2013's PrivateTest, " + text
    elif card.get("problem"):
        text += f"; {card['problem']}"
    return text


def is_ensemble(classifier) -> bool:
    return getattr(classifier, "name", None) == ENSEMBLE
