"""Temperature scaling (Guo et al., 2017): the expected calibration error, the fit of one temperature
to a model's logits, and the reliability diagram that shows both."""

from pathlib import Path

import numpy as np

BINS = 15
OBJECTIVES = {"ece": "expected calibration error", "nll": "negative log-likelihood"}


def ece(probs: np.ndarray, labels: np.ndarray, bins: int = BINS) -> float:
    """Expected calibration error: the mean gap between confidence and accuracy over equal-width bins."""
    confidence = probs.max(1)
    correct = probs.argmax(1) == labels
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    gap = sum(abs(confidence[which == b].mean() - correct[which == b].mean()) * (which == b).sum()
              for b in range(bins) if (which == b).any())
    return float(gap / len(labels))


def ece_floor(probs: np.ndarray, draws: int = 20, bins: int = BINS, seed: int = 0) -> float:
    """The ECE a perfectly calibrated model with these confidences would read on this many faces:
    labels drawn from ``probs`` themselves. Finite bins read a few points even then, so an ECE is
    judged against this floor (about 1.8 % on PrivateTest's 3,589 faces)."""
    rng = np.random.default_rng(seed)
    cumulative = np.cumsum(probs / probs.sum(1, keepdims=True), axis=1)
    readings = []
    for _ in range(draws):
        labels = np.minimum((rng.random((len(probs), 1)) > cumulative).sum(1), probs.shape[1] - 1)
        readings.append(ece(probs, labels, bins))
    return float(np.mean(readings))


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = logits / temperature
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    return float(-np.log(np.clip(softmax(logits, temperature)[np.arange(len(labels)), labels], 1e-12, None)).mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray, objective: str = "nll") -> float:
    """The T in [0.25, 4] that minimises ``objective`` (``nll`` or ``ece``): a log-spaced grid,
    then a finer one around its best."""
    def loss(t: float) -> float:
        return nll(logits, labels, t) if objective == "nll" else ece(softmax(logits, t), labels)

    grid = np.exp(np.linspace(np.log(0.25), np.log(4.0), 81))
    best = grid[np.argmin([loss(t) for t in grid])]
    fine = best * np.exp(np.linspace(-0.05, 0.05, 41))
    return float(fine[np.argmin([loss(t) for t in fine])])


def fit_shift_and_temperature(logits: np.ndarray, labels: np.ndarray, objective: str = "ece",
                              class_bias: bool = True) -> tuple[np.ndarray, float, dict]:
    """A shift per emotion chosen on macro-F1 where it generalises (``training.class_shift``; zeros
    without ``class_bias``), then the temperature of the shifted logits: the app shows
    ``softmax((logits + shift) / T)``. Also the shift's held-out check (empty without ``class_bias``)."""
    from training.class_shift import choose_checked_class_bias

    bias, check = choose_checked_class_bias(softmax(logits), labels) if class_bias else (
        np.zeros(logits.shape[1]), {})
    return bias, fit_temperature(logits + bias, labels, objective), check


def plot_reliability(probs_before: np.ndarray, probs_after: np.ndarray, labels: np.ndarray, path: Path,
                     title: str) -> Path:
    from training.reports import plt

    edges = np.linspace(0, 1, BINS + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    fig, ax = plt.subplots(figsize=(5.5, 5), dpi=110)
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", label="perfect calibration")
    for probs, name in ((probs_before, "before"), (probs_after, "after")):
        confidence, correct = probs.max(1), probs.argmax(1) == labels
        which = np.clip(np.digitize(confidence, edges[1:-1]), 0, BINS - 1)
        shown = [b for b in range(BINS) if (which == b).sum() >= 10]
        ax.plot(centres[shown], [correct[which == b].mean() for b in shown], marker="o",
                label=f"{name} (ECE {ece(probs, labels):.1%})")
    ax.set_xlabel("confidence (top class)")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
