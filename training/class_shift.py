"""A shift per emotion added to a model's (or the ensemble's) log-probabilities, chosen on PublicTest's
macro-F1: models trained on FER-2013's imbalance under-predict its rare emotions (disgust, fear).
``python -m training calibrate`` chooses one for each model, ``python -m training ensemble`` for the
ensemble; the runtimes read it from the card (``class_bias``)."""

import numpy as np

from fer_desktop.ensemble import shift


def accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    return round(float((probs.argmax(1) == labels).mean()), 4)


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
