"""Measure the ensemble of the trained models and choose its weights on PublicTest.

    python -m training ensemble --data fer2013.npz                  # writes weights/ensemble.json
    python -m training ensemble --data fer2013.npz --weights-dir weights --dry-run

Each model with weights predicts PublicTest and PrivateTest once, through the
app's own classifier (its card's input size and test-time augmentation). The
ensemble's weights are chosen on PublicTest only: equal weights, or the
weighting from a coarse grid (0, 0.5, 1, 1.5, 2 per model) that is most
accurate on PublicTest, if it beats equal weights there; and so is how the
members are combined: the mean of their probabilities, or the mean of their
calibrated logits (log-probabilities: a normalised geometric mean, as several
published FER-2013 ensembles do) where that is more accurate on PublicTest.
Then a shift per emotion of the log-probabilities is chosen on PublicTest's
macro-F1, costing at most half a point of its accuracy, and kept where it
generalises within PublicTest (``training.class_shift.held_out_check``;
``--no-class-bias``: none): FER-2013's rare emotions (disgust, fear) are
under-predicted. PrivateTest is then
measured once with the chosen weights. The members' probabilities are their
calibrated ones (``training.calibrate`` first); their mean is then given a
temperature of its own, fitted on PublicTest like theirs (a mean of calibrated
models is under-confident). ``ensemble.json`` records the members,
the weights, both accuracies, and each member's own accuracies for comparison;
``load_classifier("ensemble")`` reads it.
"""

import json
import sys
from pathlib import Path

import numpy as np

from fer_desktop.emotions import EMOTIONS
from fer_desktop.ensemble import CARD_NAME, COMBINE, shift, trained_models
from training.calibration import ece, ece_floor, fit_temperature
from training.class_shift import accuracy, choose_checked_class_bias, macro_f1
from training.cli import measuring_parser
from training.data import load_dataset
from training.ensemble_choice import choose_combination, mixed
from training.evaluation import predict_split, split_metrics


def main(argv: list[str] | None = None) -> int:
    parser = measuring_parser("ensemble", __doc__)
    parser.add_argument("--weights-dir", default=None, help="where the models' weights are (default: the app's)")
    parser.add_argument("--dry-run", action="store_true", help="print the results, write nothing")
    parser.add_argument("--no-class-bias", dest="class_bias", action="store_false",
                        help="no per-emotion shift (by default one is chosen on PublicTest's macro-F1)")
    args = parser.parse_args(argv)

    from fer_desktop.classifier import load_classifier
    from fer_desktop.weights import find_weights

    names = trained_models(args.weights_dir)
    if len(names) < 2:
        print(f"error: the ensemble needs at least two trained models; found {names}", file=sys.stderr)
        return 2
    data = load_dataset(args.data)
    (val_x, val_y), (test_x, test_y) = data.split("val"), data.split("test")
    val_y, test_y = val_y.numpy(), test_y.numpy()
    members, val_probs, test_probs = {}, [], []
    for name in names:
        classifier = load_classifier(name, device=args.device, weights_dir=args.weights_dir)
        val_probs.append(predict_split(classifier, val_x.numpy()))
        test_probs.append(predict_split(classifier, test_x.numpy()))
        members[name] = {"val_accuracy": accuracy(val_probs[-1], val_y),
                         "test_accuracy": accuracy(test_probs[-1], test_y),
                         # what its card says: the ensemble's weights apply while the card still says it
                         "card_val_accuracy": (classifier.card.get("metrics") or {}).get("val_accuracy")}
    how, weights, chosen_on, scores = choose_combination(val_probs, val_y)
    total = sum(weights)
    from fer_desktop.ensemble import sharpen

    mixes = {split: mixed(weights, probs, how) for split, probs in (("val", val_probs), ("test", test_probs))}
    bias, check = choose_checked_class_bias(mixes["val"], val_y) if args.class_bias else (
        np.zeros(len(EMOTIONS)), {})
    mean = {split: shift(mix, bias) for split, mix in mixes.items()}
    temperature = fit_temperature(np.log(np.clip(mean["val"], 1e-12, None)), val_y, "ece")
    labels = {"val": val_y, "test": test_y}
    equal = [1.0] * len(names)
    card = {
        "model": "ensemble",
        "combine": how,
        "weights": {n: round(w / total, 4) for n, w in zip(names, weights)},
        "chosen_on": chosen_on,
        "class_bias": {name: float(b) for name, b in zip(EMOTIONS, bias)},
        "class_shift_check": check,
        "temperature": round(temperature, 4),
        "calibration": {"fitted_on": "val (PublicTest), expected calibration error", "bins": 15,
                        **{f"{s}_ece_{when}": round(ece(sharpen(mean[s], t), labels[s]), 4)
                           for when, t in (("before", 1.0), ("after", round(temperature, 4))) for s in mean},
                        "test_ece_floor": round(ece_floor(sharpen(mean["test"], round(temperature, 4))), 4)},
        "metrics": {"val_accuracy": accuracy(mean["val"], val_y),
                    "test_accuracy": accuracy(mean["test"], test_y),
                    "val_macro_f1": round(split_metrics(mean["val"], val_y)["macro_f1"], 4),
                    "test_macro_f1": round(split_metrics(mean["test"], test_y)["macro_f1"], 4),
                    "test_recall": {name: scores_["recall"]
                                    for name, scores_ in split_metrics(mean["test"], test_y)["per_class"].items()},
                    # without the per-emotion shift: what it traded
                    "unshifted_val_accuracy": accuracy(mixes["val"], val_y),
                    "unshifted_test_accuracy": accuracy(mixes["test"], test_y),
                    "unshifted_val_macro_f1": round(macro_f1(mixes["val"], val_y), 4),
                    "unshifted_test_macro_f1": round(macro_f1(mixes["test"], test_y), 4),
                    "equal_weights_val_accuracy": accuracy(mixed(equal, val_probs, how), val_y),
                    "equal_weights_test_accuracy": accuracy(mixed(equal, test_probs, how), test_y),
                    # each combination with its best grid weights, on PublicTest: what chose it
                    **{f"{h}_val_accuracy": scores[h] for h in COMBINE}},
        "members": members,
        "data": Path(args.data).name,
    }
    print(json.dumps(card, indent=2))
    if not args.dry_run:
        folder = find_weights(names[0], args.weights_dir).parent
        (folder / CARD_NAME).write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {folder / CARD_NAME}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
