"""Accuracy of a weights file, measured through the app's own ``load_classifier``.

What is reported is what users run: the fp16 weights as stored, the card's
input size, normalisation and test-time augmentation, the shared preprocessing,
on the engine the app picks (ONNX Runtime where the card names a runtime file,
PyTorch otherwise; ``--backend`` chooses). ONNX Runtime's figures are the card's
``runtime.metrics``, PyTorch's its ``metrics``.

    python -m training evaluate --weights runs/baseline_cnn/baseline_cnn.safetensors --data fer2013.npz
"""

import json
import sys
from pathlib import Path

from training.cli import measuring_parser
from training.data import load_dataset
from training.evaluation import evaluate_weights, headline
from training.ferplus import LABEL_SETS


def main(argv: list[str] | None = None) -> int:
    parser = measuring_parser("evaluate", __doc__, weights=True, device="auto")
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
