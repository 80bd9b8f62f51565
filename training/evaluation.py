"""Accuracy of weights as users run them: through the app's own ``load_classifier`` (the card's input
size, normalisation, test-time augmentation and engine), on FER-2013's splits."""

from pathlib import Path

import numpy as np

from fer_desktop.classifier import load_classifier
from training.data import FaceSplits
from training.reports import confusion_matrix, per_class_scores


def predict_split(classifier, faces, batch_size: int = 256) -> np.ndarray:
    """Probabilities ``[N, 7]`` for uint8 faces, in batches to bound memory."""
    faces = np.asarray(faces)
    parts = [classifier.predict(faces[i:i + batch_size]) for i in range(0, len(faces), batch_size)]
    return np.concatenate(parts) if parts else np.zeros((0, 7), np.float32)


def evaluate_weights(weights_path: str | Path, data: FaceSplits, splits=("val", "test"), device: str = "cpu",
                     batch_size: int = 256, tta: str | None = None, backend: str = "auto") -> dict:
    """``{split: {accuracy, loss, macro_f1, per_class, confusion_matrix}, probs: {split: array}}``.

    ``tta`` (``none`` or ``hflip``) overrides the card's test-time augmentation, to measure what it buys.
    """
    classifier = load_classifier(weights_path=weights_path, device=device, backend=backend)
    if tta is not None:
        classifier.hflip_tta = tta == "hflip"
    result: dict = {"probs": {}, "backend": classifier.backend}
    for split in splits:
        faces, labels = data.split(split)
        probs = predict_split(classifier, faces.numpy(), batch_size)
        result[split] = split_metrics(probs, labels.numpy())
        result["probs"][split] = probs
    return result


def split_metrics(probs: np.ndarray, labels: np.ndarray) -> dict:
    """Accuracy, loss, per-class scores and confusion matrix of probabilities ``[N, 7]`` against labels."""
    cm = confusion_matrix(labels, probs.argmax(1))
    nll = -np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, None)).mean() if len(labels) else 0.0
    return {
        "accuracy": round(float((probs.argmax(1) == labels).mean()), 4) if len(labels) else 0.0,
        "loss": round(float(nll), 4),
        "count": int(len(labels)),
        **per_class_scores(cm),
        "confusion_matrix": cm.tolist(),
    }


def headline(result: dict) -> dict:
    """The accuracy figures a card carries."""
    return {f"{split}_{key}": result[split][key] for split in result if split not in ("probs", "backend")
            for key in ("accuracy", "macro_f1", "loss")}
