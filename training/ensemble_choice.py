"""How the ensemble is chosen on PublicTest: its members' weights, how their predictions are combined,
and a shift per emotion that lifts the rare ones (``python -m training ensemble`` runs the choice)."""

import itertools

import numpy as np

from fer_desktop.ensemble import COMBINE, combine, shift

GRID = (0.0, 0.5, 1.0, 1.5, 2.0)


def accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    return round(float((probs.argmax(1) == labels).mean()), 4)


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


def macro_f1(probs: np.ndarray, labels: np.ndarray) -> float:
    k = probs.shape[1]
    cm = np.bincount(labels * k + probs.argmax(1), minlength=k * k).reshape(k, k).astype(float)
    tp = np.diag(cm)
    denom = cm.sum(0) + cm.sum(1)  # 2 TP + FP + FN
    return float(np.mean(np.divide(2 * tp, denom, out=np.zeros(k), where=denom > 0)))


# Per-emotion shifts of the log-probabilities tried, and how much PublicTest accuracy a shift may cost.
BIAS_STEPS = np.round(np.arange(-1.0, 1.51, 0.1), 2)
MAX_ACCURACY_DROP = 0.005


def choose_class_bias(val_probs: np.ndarray, val_labels: np.ndarray, passes: int = 3) -> np.ndarray:
    """A shift per emotion (coordinate ascent over ``BIAS_STEPS``) that raises PublicTest's macro-F1
    while its accuracy stays within ``MAX_ACCURACY_DROP`` of the unshifted one: the rare emotions
    (disgust, fear) are under-predicted by models trained on FER-2013's imbalance."""
    floor = accuracy(val_probs, val_labels) - MAX_ACCURACY_DROP
    bias = np.zeros(val_probs.shape[1])
    best = macro_f1(val_probs, val_labels)
    for _ in range(passes):
        changed = False
        for k in range(len(bias)):
            for step in BIAS_STEPS:
                trial = bias.copy()
                trial[k] = step
                shifted = shift(val_probs, trial)
                score = macro_f1(shifted, val_labels)
                if score > best + 1e-9 and accuracy(shifted, val_labels) >= floor:
                    best, bias, changed = score, trial, True
        if not changed:
            break
    return bias
