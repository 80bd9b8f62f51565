"""One process of the DDP check (run by torchrun from test_training_distributed.py, or in-process).

Trains a small BatchNorm-free network for one epoch through ``train_one_epoch``
and saves what this process saw (a fingerprint of each input) and the weights.
Without BatchNorm, DDP with the same global batch must give a single process's
weights: BatchNorm's statistics are per process by design (training.distributed).
"""

import sys

import torch
from torch import nn

from fer_desktop.emotions import EMOTIONS
from training.augment import AugmentConfig
from training.distributed import Distributed, close_process_group
from training.engine import Feed, train_one_epoch
from training.recipes import Recipe

FACES, BATCH = 64, 16


def run(dist: Distributed, device: torch.device) -> dict:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    faces = torch.randint(0, 256, (FACES, 48, 48), dtype=torch.uint8, generator=g)
    labels = torch.arange(FACES) % len(EMOTIONS)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                          nn.Linear(16, len(EMOTIONS)))
    seen: list[float] = []
    model.register_forward_pre_hook(lambda module, args: seen.extend(args[0].flatten(1).sum(1).tolist()))
    recipe = Recipe(batch_size=BATCH, augment=AugmentConfig(hflip=True, rotate_deg=10.0, brightness=0.2))
    feed = Feed(48, (0.5,) * 3, (0.25,) * 3, device, channels_last=False)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    stats, steps = train_one_epoch(dist.wrap(model, device), faces, labels, recipe, feed, optimizer,
                                   lambda step: 0.5, 0, torch.Generator().manual_seed(2),
                                   torch.Generator().manual_seed(3), dist=dist)
    return {"seen": seen, "params": {k: v.detach().clone() for k, v in model.state_dict().items()},
            "loss": stats.loss, "images": stats.images, "steps": steps}


if __name__ == "__main__":
    dist, device = Distributed.from_env("cpu")
    torch.save(run(dist, device), f"{sys.argv[1]}/rank{dist.rank}.pt")
    close_process_group()
