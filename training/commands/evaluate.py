"""Accuracy of a weights file, measured through the app's own ``load_classifier``.

What is reported is what users run: the fp16 weights as stored, the card's
input size, normalisation and test-time augmentation, the shared preprocessing,
on the engine the app picks (ONNX Runtime where the card names a runtime file,
PyTorch otherwise; ``--backend`` chooses). ONNX Runtime's figures are the card's
``runtime.metrics``, PyTorch's its ``metrics``.

    python -m training evaluate --weights runs/baseline_cnn/baseline_cnn.safetensors --data fer2013.npz
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from fer_desktop.classifier import load_classifier
from training.data import FaceSplits, load_dataset
from training.ferplus import LABEL_SETS
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("--weights", required=True, help="a .safetensors file with its .json card beside it")
    parser.add_argument("--data", required=True, help="fer2013 .npz, .csv or image folder")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--backend", choices=["auto", "onnx", "torch"], default="auto",
                        help="the engine: auto is the app's choice (ONNX Runtime on the CPU where exported)")
    parser.add_argument("--splits", nargs="+", default=["val", "test"], choices=["train", "val", "test"])
    parser.add_argument("--labels", choices=LABEL_SETS, default="fer2013",
                        help="measure against FER-2013's labels or FER+'s majority labels (ferplus)")
    parser.add_argument("--tta", choices=["none", "hflip"],
                        help="override the card's test-time augmentation (the card's figures then differ)")
    parser.add_argument("--per-class", action="store_true", help="also each emotion's recall, per split")
    args = parser.parse_args(argv)
    result = evaluate_weights(args.weights, load_dataset(args.data, labels=args.labels), args.splits, args.device,
                              tta=args.tta, backend=args.backend)
    measured = headline(result)
    card = json.loads(Path(args.weights).with_suffix(".json").read_text(encoding="utf-8"))
    stated = (card.get("runtime") or {}).get("metrics", {}) if result["backend"] == "onnx" else card.get("metrics", {})
    engine = f"ONNX Runtime {card['runtime']['precision']}" if result["backend"] == "onnx" else "PyTorch"
    print(f"measured on {engine}; the card's figures for it in brackets", file=sys.stderr)
    for key, value in measured.items():
        note = f"  (card: {stated[key]})" if key in stated else ""
        print(f"{key:20s} {value:.4f}{note}")
    if args.per_class:
        for split in args.splits:
            recall = "  ".join(f"{name} {scores['recall']:.3f}" for name, scores in result[split]["per_class"].items())
            print(f"{split}_recall{'':{max(0, 13 - len(split))}s} {recall}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
