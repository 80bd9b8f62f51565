"""Train one of the four models on FER-2013 and write its weights, card, metrics and figures.

    python -m training train --model baseline_cnn --data fer2013.npz --out runs/baseline_cnn
    python -m training train --model resnet50_cbam --data fer2013.npz --recipe best --budget-s 200
    python -m training train --model resnet50 --data fer2013.npz --recipe best --no-mixup   # ablation
    python -m training train ... --resume          # continue from <out>/last.pt
    python -m training train --model attention_cnn --data fer2013.npz --export weights/   # ship to the app
    torchrun --nproc_per_node=4 -m training train --model resnet50 --data fer2013.npz --recipe best  # 4 GPUs

Outputs in ``--out`` (default ``runs/<model>``): ``<model>.safetensors`` + ``<model>.json`` (the card the
app reads), ``metrics.json``, ``confusion_matrix.png``, ``learning_curves.png``,
``sample_predictions.png``, ``config.json`` and the checkpoint ``last.pt``.
"""

import argparse
import sys

from fer_desktop.models import list_models
from fer_desktop.weights import WeightsError
from training.distributed import close_process_group
from training.ferplus import LABEL_SETS
from training.pretrained import PretrainedWeightsMissing
from training.recipes import ABLATIONS, RECIPE_NAMES, Recipe, parse_overrides, resolve_recipe
from training.session import RunConfig
from training.trainer import train


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training train", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, choices=list_models())
    parser.add_argument("--data", required=True, help="fer2013 .npz (full or packed), .csv or image folder")
    parser.add_argument("--out", help="output folder (default runs/<model>)")
    parser.add_argument("--recipe", default="paper", choices=RECIPE_NAMES)
    recipe = parser.add_argument_group("recipe overrides")
    recipe.add_argument("--epochs", type=int)
    recipe.add_argument("--batch-size", type=int)
    recipe.add_argument("--lr", type=float)
    recipe.add_argument("--input-size", type=int, help="side of the model input (faces are resized to it)")
    recipe.add_argument("--init", choices=["scratch", "imagenet"])
    recipe.add_argument("--tta", choices=["none", "hflip"])
    recipe.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="any recipe field, e.g. --set augment.erase_p=0.5 --set architecture.dropout=0.3")
    for name in ABLATIONS:
        recipe.add_argument(f"--{name.replace('_', '-')}", action="store_true", help=f"ablation: {ABLATIONS[name]}")
    run = parser.add_argument_group("run")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    run.add_argument("--limit", type=int, help="train on at most this many faces (quick trials)")
    run.add_argument("--budget-s", type=float, help="time budget in seconds; fewer epochs if needed")
    run.add_argument("--resume", action="store_true", help="continue from <out>/last.pt")
    run.add_argument("--stop-after", type=int, help="stop resumably after this many epochs")
    run.add_argument("--deterministic", action="store_true")
    run.add_argument("--compile", action="store_true", help="torch.compile the model (CUDA, long runs)")
    run.add_argument("--threads", type=int, help="CPU threads for torch")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument("--export", metavar="DIR", help="also copy the weights and card to DIR, e.g. weights/")
    run.add_argument("--no-runtime", action="store_true",
                     help="skip exporting the runtime file (<model>.onnx) for ONNX Runtime at the end")
    run.add_argument("--labels", choices=LABEL_SETS, default="fer2013",
                     help="FER-2013's labels, or FER+'s majority (ferplus) or vote distributions (ferplus-soft)")
    run.add_argument("--distill", metavar="WEIGHTS", nargs="+",
                     help="trained models' .safetensors whose (mean) probabilities become a second target, "
                          "weighted by the recipe's distill_alpha (default 0.5; --set distill_alpha=...)")
    run.add_argument("--init-from", metavar="WEIGHTS",
                     help="start from a trained .safetensors of the same model and architecture, e.g. to "
                          "fine-tune at a larger --input-size")
    run.add_argument("--stream", choices=["auto", "on", "off"], default="auto",
                     help="stream training faces to the device batch by batch instead of copying them there "
                          "once (auto: for memory-mapped data, or a set over a fifth of the GPU's memory)")
    run.add_argument("--workers", type=int, default=2, help="DataLoader workers when streaming")
    run.add_argument("--sync-bn", action="store_true",
                     help="under torchrun on CUDA: synchronise BatchNorm statistics across processes")
    return parser


def configs_from_args(args: argparse.Namespace) -> tuple[RunConfig, Recipe]:
    overrides = {}
    for flag, key in (("epochs", "epochs"), ("batch_size", "batch_size"), ("lr", "lr"),
                      ("input_size", "input_size"), ("init", "init"), ("tta", "tta")):
        if getattr(args, flag) is not None:
            overrides[key] = getattr(args, flag)
    overrides.update(parse_overrides(args.set))
    ablations = [name for name in ABLATIONS if getattr(args, name)]
    recipe = resolve_recipe(args.model, args.recipe, ablations, overrides)
    run = RunConfig(model=args.model, data=args.data, out=args.out or f"runs/{args.model}", seed=args.seed,
                    device=args.device, limit=args.limit, budget_s=args.budget_s, resume=args.resume,
                    stop_after=args.stop_after, deterministic=args.deterministic, compile=args.compile,
                    threads=args.threads, progress=not args.quiet, export=args.export,
                    runtime=not args.no_runtime, sync_bn=args.sync_bn,
                    labels=args.labels, stream=args.stream, workers=args.workers,
                    distill=args.distill, init_from=args.init_from)
    return run, recipe


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        run, recipe = configs_from_args(args)
        train(run, recipe)
    except (ValueError, FileNotFoundError, PretrainedWeightsMissing, WeightsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        close_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
