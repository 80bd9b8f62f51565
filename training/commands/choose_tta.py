"""Keep flip test-time augmentation only if it buys accuracy on PublicTest, and rewrite the card to match.

    python -m training choose_tta --weights weights/baseline_cnn.safetensors --data fer2013.npz

Flipping doubles the forward passes. This measures the weights with and without
it on val (PublicTest) only, writes the better choice into the card's
``test_time_augmentation`` (ties keep the single pass, which is cheaper),
records both val figures under ``test_time_augmentation_choice``, and replaces
the card's metrics with those of the chosen setting (val and test, through the
app's own ``load_classifier(...).predict``: PyTorch for ``metrics``, ONNX Runtime
for ``runtime.metrics``), so that ``python -m training evaluate`` reproduces the card.
"""

import json
import sys
from pathlib import Path

from training.cli import measuring_parser
from training.data import load_dataset
from training.evaluation import evaluate_weights, headline


def choose_tta(weights: str | Path, data, device: str = "cpu", ferplus=None) -> dict:
    """``ferplus``: the same faces with FER+'s labels, if the data has them (for ``ferplus_test_accuracy``)."""
    weights = Path(weights)
    val = {tta: evaluate_weights(weights, data, ("val",), device, tta=tta)["val"]["accuracy"]
           for tta in ("none", "hflip")}
    chosen = "hflip" if val["hflip"] > val["none"] else "none"
    card_path = weights.with_suffix(".json")
    card = json.loads(card_path.read_text(encoding="utf-8"))
    card["test_time_augmentation"] = chosen
    card["test_time_augmentation_choice"] = {"val_accuracy": val, "chosen": chosen, "chosen_on": "val (PublicTest)"}
    # The card's metrics are PyTorch's, its runtime block's ONNX Runtime's (as the run wrote them).
    measured = headline(evaluate_weights(weights, data, ("val", "test"), device, tta=chosen, backend="torch"))
    if ferplus is not None:  # the other label set's figure follows the choice too
        measured["ferplus_test_accuracy"] = evaluate_weights(weights, ferplus, ("test",), device, tta=chosen,
                                                             backend="torch")["test"]["accuracy"]
    card["metrics"] = {**card.get("metrics", {}), **measured}
    if card.get("runtime", {}).get("metrics") and device == "cpu":
        runtime = headline(evaluate_weights(weights, data, ("val", "test"), device, tta=chosen, backend="onnx"))
        card["runtime"]["metrics"] = {**card["runtime"]["metrics"], **runtime}
    card_path.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    return card


def main(argv: list[str] | None = None) -> int:
    args = measuring_parser("choose_tta", __doc__, weights=True).parse_args(argv)
    try:
        ferplus = load_dataset(args.data, labels="ferplus")
    except ValueError:
        ferplus = None  # no FER+ votes in this dataset
    card = choose_tta(args.weights, load_dataset(args.data), args.device, ferplus)
    choice = card["test_time_augmentation_choice"]
    print(f"val accuracy: no flip {choice['val_accuracy']['none']:.4f}, flip {choice['val_accuracy']['hflip']:.4f}"
          f" -> {choice['chosen']}; test accuracy {card['metrics']['test_accuracy']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
