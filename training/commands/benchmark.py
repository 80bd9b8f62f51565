"""Training throughput (images/s) of each model: memory layout and precision side by side.

    python -m training benchmark                    # this machine, results in training/benchmark_results.json
    python -m training benchmark --models baseline_cnn attention_cnn --steps 6
    python -m training benchmark --device cuda --batch-size 128 --steps 20

A training step here is what ``training.train`` does per batch: shared
preprocessing on the device, augmentation, forward, loss, backward, SGD step,
with the ``best`` recipe's architecture and input size (``--paper-sizes`` adds
the paper's 128/224 px). Each model is timed as

- ``fp32 NCHW``: what training did before channels-last;
- ``fp32 channels_last``;
- ``bf16 channels_last``: bf16 autocast, timed only where the device runs bf16
  natively (``training.precision``) unless ``--emulated-bf16`` asks for it.
"""

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from fer_desktop.models import create_model, list_models
from training.precision import autocast_bf16, cpu_name, cpu_runs_bf16_natively
from training.augment import augment
from training.engine import Feed
from training.recipes import best_recipe, normalisation, paper_recipe

RESULTS = Path(__file__).resolve().parent / "benchmark_results.json"
FER2013_TRAIN = 28709


def machine(device: torch.device) -> dict:
    info = {"python": platform.python_version(), "torch": torch.__version__, "device": device.type}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    else:
        info.update(cpu=cpu_name(), cores=os.cpu_count(), threads=torch.get_num_threads(),
                    cpu_capability=torch.backends.cpu.get_cpu_capability(),
                    native_bf16=cpu_runs_bf16_natively())
    return info


def images_per_s(name: str, size: int, architecture: dict, batch: int, steps: int, device: torch.device,
                 channels_last: bool, bf16: bool) -> float:
    mean, std = normalisation(name)
    recipe = best_recipe(name)
    model = create_model(name, **architecture).to(device).train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    feed = Feed(size, mean, std, device, bf16=bf16, channels_last=channels_last)
    g = torch.Generator(device=device).manual_seed(0)
    faces = torch.randint(0, 256, (batch, 48, 48), dtype=torch.uint8, device=device)
    labels = torch.randint(0, 7, (batch,), device=device)

    def step():
        x = feed.layout(augment(feed.inputs(faces), recipe.augment, g, mean, std))
        with feed.autocast():
            loss = F.cross_entropy(model(x).float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()  # warm-up: allocation, oneDNN primitive creation, cuDNN algorithm search
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return batch * steps / (time.perf_counter() - start)


def variants(device: torch.device, emulated_bf16: bool, channels_last_only: bool = False) -> list[tuple[str, bool, bool]]:
    rows = [("fp32 channels_last", True, False)] if channels_last_only else [
        ("fp32 NCHW", False, False), ("fp32 channels_last", True, False)]
    if autocast_bf16(device) or emulated_bf16:
        rows.append(("bf16 channels_last", True, True))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training benchmark", description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=list_models(), choices=list_models())
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=128, help="the best recipe's batch (default 128)")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    parser.add_argument("--paper-sizes", action="store_true", help="also time the paper's 128/224 px inputs")
    parser.add_argument("--registry-widths", action="store_true",
                        help="also time the registry's architecture (full width) at the best recipe's input size")
    parser.add_argument("--sizes", nargs="+", type=int,
                        help="time these input sizes instead of the best recipe's (e.g. 48 64 96)")
    parser.add_argument("--stem-strides", nargs="+", type=int,
                        help="ResNets: also time these stems (architecture.stem_stride 4, 2 or 1)")
    parser.add_argument("--channels-last-only", action="store_true", help="skip the NCHW rows")
    parser.add_argument("--emulated-bf16", action="store_true", help="time bf16 even where it is not native")
    parser.add_argument("--note", default="", help="stored with the results, e.g. other load on the machine")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from fer_desktop.torch_classifier import select_device

    device = select_device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    rows = []
    for name in args.models:
        recipe = best_recipe(name)
        configs = [("best", size, recipe.architecture) for size in (args.sizes or [recipe.input_size])]
        if args.stem_strides and name.startswith("resnet"):
            configs = [(f"best, stem stride {stride}", size, {**recipe.architecture, "stem_stride": stride})
                       for stride in args.stem_strides for size in (args.sizes or [recipe.input_size])]
        if args.registry_widths and recipe.architecture:
            configs.append(("best size, registry architecture", recipe.input_size, {}))
        if args.paper_sizes:
            configs.append(("paper", paper_recipe(name).input_size, {}))
        for label, size, architecture in configs:
            for variant, channels_last, bf16 in variants(device, args.emulated_bf16, args.channels_last_only):
                rate = images_per_s(name, size, architecture, args.batch_size, args.steps, device,
                                    channels_last, bf16)
                rows.append({"model": name, "recipe": label, "input_size": size, "architecture": architecture,
                             "variant": variant, "batch_size": args.batch_size,
                             "train_images_per_s": round(rate, 1),
                             "epoch_s_fer2013_train": round(FER2013_TRAIN / rate, 1)})
                print(f"{name:14s} {label:32s} {size:4d}px  {variant:20s} {rate:8.1f} img/s  "
                      f"~{FER2013_TRAIN / rate:8.0f} s/epoch", flush=True)
    Path(args.out).write_text(json.dumps({"machine": machine(device), "note": args.note, "results": rows},
                                         indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
