"""How the ensemble is chosen on PublicTest: its members' weights and how their predictions are combined
(``python -m training ensemble`` runs the choice; its shift per emotion is ``training.class_shift``'s)."""

import itertools

import numpy as np

from fer_desktop.ensemble import COMBINE, combine
from training.class_shift import accuracy

GRID = (0.0, 0.5, 1.0, 1.5, 2.0)


def mixed(weights: list[float], probs: list[np.ndarray], how: str = "probabilities") -> np.ndarray:
    """The members' ``probs`` combined ``how`` with ``weights`` (normalised here)."""
    total = sum(weights)
    return combine([(w / total, p) for w, p in zip(weights, probs) if w > 0], how)


def choose_weights(val_probs: list[np.ndarray], val_labels: np.ndarray,
                   how: str = "probabilities") -> tuple[list[float], str]:
    """Equal weights, or the grid's best on PublicTest if it is strictly better."""
    equal = [1.0] * len(val_probs)
    best, best_acc = equal, accuracy(mixed(equal, val_probs, how), val_labels)
    for weights in itertools.product(GRID, repeat=len(val_probs)):
        if sum(w > 0 for w in weights) < 2:
            continue  # an ensemble of one is not an ensemble
        acc = accuracy(mixed(list(weights), val_probs, how), val_labels)
        if acc > best_acc:
            best, best_acc = list(weights), acc
    return best, "equal" if best == equal else "grid on PublicTest"


def choose_combination(val_probs: list[np.ndarray], val_labels: np.ndarray) -> tuple[str, list[float], str, dict]:
    """The combination and weights most accurate on PublicTest; averaging probabilities unless
    averaging calibrated logits is strictly better. Also each combination's best PublicTest accuracy."""
    tried = {how: choose_weights(val_probs, val_labels, how) for how in COMBINE}
    scores = {how: accuracy(mixed(w, val_probs, how), val_labels) for how, (w, _) in tried.items()}
    how = max(COMBINE, key=lambda h: (scores[h], h == "probabilities"))
    return (how, *tried[how], scores)
