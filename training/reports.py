"""Metrics and figures of a run: confusion matrix, learning curves, sample predictions."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display, no Qt
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from fer_desktop.emotions import EMOTIONS  # noqa: E402


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int = len(EMOTIONS)) -> np.ndarray:
    """Counts ``[true, predicted]``."""
    cm = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(cm, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return cm


def per_class_scores(cm: np.ndarray) -> dict:
    """Precision, recall and F1 per class, and their macro averages."""
    tp = np.diag(cm).astype(float)
    precision = np.divide(tp, cm.sum(0), out=np.zeros_like(tp), where=cm.sum(0) > 0)
    recall = np.divide(tp, cm.sum(1), out=np.zeros_like(tp), where=cm.sum(1) > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return {
        "per_class": {name: {"precision": round(float(p), 4), "recall": round(float(r), 4), "f1": round(float(f), 4),
                             "support": int(s)}
                      for name, p, r, f, s in zip(EMOTIONS, precision, recall, f1, cm.sum(1), strict=True)},
        "macro_f1": round(float(f1.mean()), 4),
    }


def plot_confusion_matrix(cm: np.ndarray, path: str | Path, title: str) -> Path:
    """Row-normalised colours (recall per class), with counts and percentages written in each cell."""
    rows = cm.sum(1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros(cm.shape, float), where=rows > 0)
    fig, ax = plt.subplots(figsize=(7.5, 6.5), dpi=110)
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(EMOTIONS)), EMOTIONS, rotation=35, ha="right")
    ax.set_yticks(range(len(EMOTIONS)), EMOTIONS)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, f"{cm[i, j]}\n{norm[i, j]:.0%}", ha="center", va="center", fontsize=8,
                    color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def plot_learning_curves(history: list[dict], path: str | Path, title: str) -> Path:
    """Loss and accuracy per epoch for train (augmented batches) and val."""
    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110)
    ax_loss.plot(epochs, [h["train_loss"] for h in history], "o-", label="train (augmented)")
    ax_loss.plot(epochs, [h["val_loss"] for h in history], "o-", label="val")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("cross-entropy")
    ax_loss.set_title("loss")
    ax_loss.legend()
    ax_acc.plot(epochs, [100 * h["train_accuracy"] for h in history], "o-", label="train (augmented)")
    ax_acc.plot(epochs, [100 * h["val_accuracy"] for h in history], "o-", label="val")
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("accuracy (%)")
    ax_acc.set_title("accuracy")
    ax_acc.legend()
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        if len(epochs) < 12:
            ax.set_xticks(epochs)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def plot_sample_predictions(faces: np.ndarray, labels: np.ndarray, probs: np.ndarray, path: str | Path,
                            title: str, count: int = 24, seed: int = 0) -> Path:
    """A grid of test faces with true and predicted emotion; wrong predictions in red."""
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(faces), size=min(count, len(faces)), replace=False))
    cols = 6
    rows = max(1, int(np.ceil(len(pick) / cols)))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.9, rows * 2.25), dpi=110, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, pick, strict=False):
        pred = int(probs[i].argmax())
        ax.imshow(faces[i], cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"true {EMOTIONS[labels[i]]}\npred {EMOTIONS[pred]} {probs[i, pred]:.0%}", fontsize=8,
                     color="black" if pred == labels[i] else "red")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)
