"""Train the four models one after another within one time budget.

    python -m training train_all --data fer2013.packed.npz --out runs/all --budget-s 480 --bundle runs/parts

The custom CNNs go first (cheap, so a cut-off run still has them). Each model
gets a share of the time that is left, so time a model does not use passes to
the next. Each model's outputs are written to ``<out>/<model>/`` the moment it
finishes; with ``--bundle DIR`` they are also appended to a tar that is kept
in DIR as parts of at most 15 MiB (``python -m training bundle join DIR DEST``
puts them back together).
"""

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path

from training.bundle_parts import BUNDLE_NAME, append_to_bundle, split_into_parts
from training.data import load_dataset
from training.distributed import close_process_group, wait_for_all
from training.recipes import ABLATIONS, RECIPE_NAMES, parse_overrides, resolve_recipe
from training.session import RunConfig
from training.trainer import train

ORDER = ("baseline_cnn", "attention_cnn", "resnet50", "resnet50_cbam")
# Relative cost of the best recipes (measured throughput x epochs wanted); sets each model's share.
SHARES = {"baseline_cnn": 0.12, "attention_cnn": 0.13, "resnet50": 0.375, "resnet50_cbam": 0.375}
DELIVERABLES = ("{model}.safetensors", "{model}.json", "metrics.json", "config.json", "confusion_matrix.png",
                "learning_curves.png", "sample_predictions.png")
# Time kept back from the whole budget for start-up and bundling.
OVERHEAD_S = 10.0


def model_budget(models_left: list[str], time_left: float) -> float:
    return time_left * SHARES[models_left[0]] / sum(SHARES[m] for m in models_left)


def resnet_init(choice: str, recipe_init: str) -> str | None:
    """The ``init`` override for the ResNets (None: keep the recipe's)."""
    if choice != "auto":
        return choice
    if recipe_init != "imagenet":
        return None
    from training.pretrained import IMAGENET_FILES, cached_imagenet_file, hub_checkpoint_dir

    if cached_imagenet_file() is not None:
        return None
    print(f"warning: no ImageNet weights ({IMAGENET_FILES['IMAGENET1K_V2']}) in {hub_checkpoint_dir()}; "
          "training the ResNets from scratch", file=sys.stderr)
    return "scratch"


def resnet_teacher(model: str, args: argparse.Namespace, out: Path) -> str | None:
    """The weights a ResNet distils from: this run's baseline_cnn, under ``--recipe best --teacher auto``."""
    if not model.startswith("resnet") or args.recipe != "best" or args.teacher != "auto":
        return None
    weights = out / "baseline_cnn" / "baseline_cnn.safetensors"
    return str(weights) if weights.is_file() else None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training train_all", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True, help="one subfolder per model")
    parser.add_argument("--budget-s", type=float, required=True, help="time budget in seconds for all models")
    parser.add_argument("--bundle", help="folder for the tar parts of the finished outputs")
    parser.add_argument("--models", nargs="+", default=list(ORDER), choices=ORDER)
    parser.add_argument("--recipe", default="best", choices=RECIPE_NAMES)
    parser.add_argument("--input-size", type=int, help="one input size for every model (quick trials)")
    parser.add_argument("--epochs", type=int, help="at most this many epochs per model")
    parser.add_argument("--init", choices=["auto", "scratch", "imagenet"], default="auto",
                        help="ResNet initialisation; auto: the recipe's (paper: ImageNet, best: from scratch), "
                             "from scratch with a warning when ImageNet's file is not in the torch hub cache, "
                             "so an offline machine still trains all four")
    parser.add_argument("--teacher", choices=["auto", "none"], default="auto",
                        help="auto: with --recipe best, the ResNets learn from this run's baseline_cnn too "
                             "(distillation, as the shipped ResNets did); none: from the labels alone")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="recipe override, all models")
    for name in ABLATIONS:
        parser.add_argument(f"--{name.replace('_', '-')}", action="store_true", help=f"ablation: {ABLATIONS[name]}")
    parser.add_argument("--limit", type=int, help="train on at most this many faces (quick trials)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--threads", type=int, help="CPU threads for torch")
    parser.add_argument("--no-runtime", dest="runtime", action="store_false",
                        help="skip each model's ONNX runtime file (python -m training export makes it later)")
    parser.add_argument("--quiet", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run_all(args)
    finally:
        close_process_group()


def run_all(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    main_process = int(os.environ.get("RANK", "0")) == 0  # under torchrun, rank 0 alone writes
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = load_dataset(args.data, seed=args.seed)
    overrides = parse_overrides(args.set)
    for key in ("input_size", "epochs"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    ablations = [name for name in ABLATIONS if getattr(args, name)]
    tar_path = out / BUNDLE_NAME
    if main_process:
        tar_path.unlink(missing_ok=True)
    summary: dict = {"recipe": args.recipe, "budget_s": args.budget_s, "models": {}}
    failed = False
    models = [m for m in ORDER if m in args.models]
    for i, model in enumerate(models):
        time_left = args.budget_s - OVERHEAD_S - (time.perf_counter() - start)
        budget = model_budget(models[i:], time_left)
        model_overrides = dict(overrides)
        if model.startswith("resnet"):
            init = resnet_init(args.init, resolve_recipe(model, args.recipe, ablations, overrides).init)
            if init is not None:
                model_overrides["init"] = init
        teacher = resnet_teacher(model, args, out)
        # One write, newline included: under torchrun every process shares the terminal.
        sys.stderr.write(f"== {model}: {budget:.0f} s of {time_left:.0f} s left; teacher: "
                         f"{Path(teacher).stem if teacher else 'none'}\n")
        run = RunConfig(model=model, data=args.data, out=str(out / model), seed=args.seed, device=args.device,
                        limit=args.limit, budget_s=max(budget, 1.0), compile=args.compile, threads=args.threads,
                        progress=not args.quiet, distill=teacher, runtime=args.runtime)
        try:
            recipe = resolve_recipe(model, args.recipe, ablations, model_overrides)
            metrics = train(run, recipe, data)
            if main_process:
                summary["models"][model] = {k: metrics[k] for k in ("val_accuracy", "test_accuracy",
                                                                     "test_macro_f1", "epochs", "training_time_s")}
        except Exception as exc:  # one failure must not cost the models after it
            traceback.print_exc()
            summary["models"][model] = {"error": f"{type(exc).__name__}: {exc}"}
            failed = True
            if not main_process:
                raise  # the other processes wait for this one: end the run rather than hang
        # Rank 0 alone finalises (weights, card, reports) while the others have already left
        # train(): wait for it, so that every process sees its files (the next ResNet's teacher)
        # and all train the next model with the same loss.
        wait_for_all()
        if not main_process:
            continue
        summary["elapsed_s"] = round(time.perf_counter() - start, 1)
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        if args.bundle:
            files = [out / model / name.format(model=model) for name in DELIVERABLES]
            append_to_bundle(tar_path, [f for f in files if f.is_file()] + [out / "summary.json"], out)
            split_into_parts(tar_path, Path(args.bundle))
    if main_process:
        print(json.dumps(summary, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
