"""Training throughput (images/s) of each model at the paper's and the best recipe's input sizes.

    python -m training.benchmark                    # this machine, results in training/benchmark_results.json
    python -m training.benchmark --device cuda --batch-size 128 --steps 20

A training step here is what ``training.train`` does per batch: shared
preprocessing on the device, augmentation, forward, loss, backward, SGD step.
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

from fer_desktop.models import create_model, get_spec, list_models
from training.augment import AugmentConfig, augment
from training.engine import Feed
from training.recipes import best_recipe

RESULTS = Path(__file__).resolve().parent / "benchmark_results.json"


def cpu_name() -> str:
    try:  # Linux names the model here; platform.processor() is often empty there
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device: torch.device) -> dict:
    info = {"python": platform.python_version(), "torch": torch.__version__, "device": device.type}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    else:
        info.update(cpu=cpu_name(), cores=os.cpu_count(), threads=torch.get_num_threads())
    return info


def images_per_s(name: str, size: int, batch: int, steps: int, device: torch.device) -> float:
    spec = get_spec(name)
    model = create_model(name).to(device).train()
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    feed = Feed(size, spec.mean, spec.std, device)
    g = torch.Generator(device=device).manual_seed(0)
    faces = torch.randint(0, 256, (batch, 48, 48), dtype=torch.uint8, device=device)
    labels = torch.randint(0, 7, (batch,), device=device)

    def step():
        x = augment(feed.inputs(faces), AugmentConfig(), g, spec.mean, spec.std)
        with feed.autocast():
            loss = F.cross_entropy(model(x).float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()  # warm-up: allocation, cuDNN algorithm search
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return batch * steps / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.benchmark", description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=list_models(), choices=list_models())
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    parser.add_argument("--note", default="", help="stored with the results, e.g. other load on the machine")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from fer_desktop.classifier import select_device

    device = select_device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    rows = []
    for name in args.models:
        for label, size in (("paper", get_spec(name).input_size), ("best", best_recipe(name).input_size)):
            rate = images_per_s(name, size, args.batch_size, args.steps, device)
            rows.append({"model": name, "input_size": size, "recipe_size": label, "batch_size": args.batch_size,
                         "train_images_per_s": round(rate, 1),
                         "epoch_s_fer2013_train": round(28709 / rate, 1)})
            print(f"{name:14s} {size:4d}px  {rate:8.1f} img/s  ~{28709 / rate:8.0f} s/epoch", flush=True)
    Path(args.out).write_text(json.dumps({"machine": machine(device), "note": args.note, "results": rows}, indent=2) + "\n",
                              encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
