"""Training loss, gradient norm and largest logit over a model's first steps, for a recipe.

    python -m training first_steps --model resnet50 --data fer2013.npz --steps 96 --set grad_clip=0
    python -m training first_steps --model resnet50 --data fer2013.npz --steps 200 --warmup-steps 32 \
        --every 25 --val 1500 --set optimizer=adamw --set lr=0.001 --set weight_decay=0.05

A few minutes on a CPU say whether a recipe is stable from scratch and leaves
the class prior (the loss should fall below chance, ln 7 = 1.95, then below
the prior's entropy, about 1.85 with label smoothing, and the logits stay
moderate) before an epoch is paid for. ``--val N`` ends with the accuracy on
the first N PublicTest faces. Random training faces, the recipe's augmentation, optimiser,
label smoothing and gradient clipping; the learning rate warms up linearly over
``--warmup-steps``.
"""

import argparse
import sys
import time

import torch
import torch.nn.functional as F

from fer_desktop.models import create_model
from training.augment import augment
from training.data import load_dataset
from training.engine import Feed, build_optimizer
from training.recipes import RECIPE_NAMES, normalisation, parse_overrides, resolve_recipe


def first_steps(model_name: str, data_path: str, steps: int, batch_size: int, warmup_steps: int,
                recipe_name: str = "best", overrides: dict | None = None, seed: int = 0,
                val_faces: int = 0) -> tuple[list[dict], float | None]:
    """One row per step, and the accuracy on the first ``val_faces`` PublicTest faces (None if 0)."""
    recipe = resolve_recipe(model_name, recipe_name, overrides=overrides or {})
    data = load_dataset(data_path)
    torch.manual_seed(seed)
    order = torch.randperm(len(data.train_y), generator=torch.Generator().manual_seed(seed))
    pick = order[:steps * batch_size]
    faces, labels = data.train_x[pick], data.train_y[pick]
    feed = Feed(recipe.input_size, *normalisation(model_name), torch.device("cpu"), bf16=False)
    model = create_model(model_name, **recipe.architecture).to(memory_format=torch.channels_last).train()
    optimizer = build_optimizer(model, recipe)
    aug_gen = torch.Generator().manual_seed(seed + 1)
    rows = []
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = recipe.lr * min(1.0, (step + 1) / warmup_steps)
        batch = slice(step * batch_size, (step + 1) * batch_size)
        x = feed.layout(augment(feed.inputs(faces[batch]), recipe.augment, aug_gen, feed.mean, feed.std))
        logits = model(x)
        loss = F.cross_entropy(logits, labels[batch], label_smoothing=recipe.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip or float("inf"))
        optimizer.step()
        rows.append({"step": step, "loss": round(loss.item(), 3), "grad_norm": round(float(norm), 2),
                     "max_logit": round(float(logits.detach().abs().max()), 1)})
    return rows, (_accuracy(model, feed, *data.split("val"), val_faces) if val_faces else None)


def _accuracy(model, feed: Feed, faces: torch.Tensor, labels: torch.Tensor, count: int) -> float:
    model.eval()
    faces, labels = faces[:count], labels[:count]
    with torch.no_grad():
        predicted = torch.cat([model(feed.layout(feed.inputs(faces[i:i + 250]))).argmax(1)
                               for i in range(0, len(labels), 250)])
    return int((predicted == labels).sum()) / len(labels)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training first_steps",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--recipe", default="best", choices=RECIPE_NAMES)
    parser.add_argument("--steps", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--warmup-steps", type=int, default=16)
    parser.add_argument("--every", type=int, default=8, help="print every N-th step, mean loss of the N")
    parser.add_argument("--val", type=int, default=0, metavar="N",
                        help="end with the accuracy on the first N PublicTest faces")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="recipe override")
    parser.add_argument("--threads", type=int)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    try:
        rows, accuracy = first_steps(args.model, args.data, args.steps, args.batch_size, args.warmup_steps,
                                     args.recipe, parse_overrides(args.set), val_faces=args.val)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    shown = [0] + list(range(args.every - 1, len(rows), args.every))  # the first step, then each N-th
    for step in sorted(set(shown + [len(rows) - 1])):
        row, window = rows[step], [r["loss"] for r in rows[max(0, step - args.every + 1):step + 1]]
        print(f"step {step + 1:4d}  loss {row['loss']:.3f}  mean of the last {len(window):2d}: "
              f"{sum(window) / len(window):.3f}  grad norm {row['grad_norm']:7.2f}  "
              f"max |logit| {row['max_logit']:6.1f}")
    if accuracy is not None:
        print(f"PublicTest accuracy, first {args.val} faces: {accuracy:.1%}")
    print(f"{len(rows)} steps in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
