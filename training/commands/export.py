"""Export trained weights to the runtime the app serves on the CPU: ``<name>.onnx`` for ONNX Runtime.

    python -m training export --all --data fer2013.npz          # every model in weights/
    python -m training export resnet50 --data fer2013.npz

The graph is the model at its card's input size with a dynamic batch and up to
three outputs: ``logits``, ``features`` (the last convolutional stage, for
Grad-CAM) and ``attention`` (the model's own spatial attention map, where it
has one). It is quantised to int8 (QDQ: per-channel int8 weights, uint8
activations, calibrated on faces drawn at random from the training split)
where that keeps PublicTest accuracy within ``--max-drop`` points of fp32;
otherwise it is kept in fp32 with its weights stored as fp16. The choice is
made on PublicTest; PrivateTest is reported. The card gets a ``runtime`` block
(file, precision, calibration, the safetensors' SHA-256, both accuracies
through ONNX Runtime); a retrained card has none, so a stale file is never served.
Needs torch, onnx and onnxruntime (``pip install -e ".[train]"``).
"""

import argparse
import sys
from pathlib import Path

from training.runtime_export import MAX_DROP, export


def main(argv: list[str] | None = None) -> int:
    from fer_desktop.models.registry import list_models

    parser = argparse.ArgumentParser(prog="python -m training export", description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="*", help="model names (their weights in --weights-dir) or .safetensors")
    parser.add_argument("--all", action="store_true", help="every model with weights in --weights-dir")
    parser.add_argument("--weights-dir", default="weights")
    parser.add_argument("--data", help="FER-2013 (.npz, .csv or folder): calibration faces and the int8 check")
    parser.add_argument("--max-drop", type=float, default=MAX_DROP, help="PublicTest points int8 may lose")
    parser.add_argument("--precision", choices=["int8", "fp32"], help="skip the choice (without --data: "
                        "int8 is calibrated on blank faces, for tests only)")
    args = parser.parse_args(argv)
    folder = Path(args.weights_dir)
    names = list_models() if args.all else args.models
    if not names:
        parser.error("name a model or give --all")
    for name in names:
        path = Path(name) if name.endswith(".safetensors") else folder / f"{name}.safetensors"
        if not path.is_file():
            if args.all:
                continue
            print(f"export: {path}: no such weights", file=sys.stderr)
            return 2
        runtime = export(path, args.data, args.max_drop, force=args.precision)
        metrics = runtime.get("metrics", {})
        print(f"{path.with_suffix('.onnx')}: {runtime['precision']}"
              + (f", PublicTest {metrics['val_accuracy']:.4f} (int8 {metrics.get('int8_val_accuracy')}, "
                 f"fp32 {metrics.get('fp32_val_accuracy')}), PrivateTest {metrics['test_accuracy']:.4f}"
                 if metrics else ""), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
