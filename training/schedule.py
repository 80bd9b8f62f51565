"""Learning-rate schedule as a pure function of the step, so resuming needs only the step number.

A linear warm-up over whole epochs, then constant, cosine decay to zero, or
cosine annealing with warm restarts (the paper's ``CosineAnnealingWarmRestarts``:
the cosine restarts every ``restart_epochs``). The warm-up is counted in epochs
and the decay spans the rest, so shortening the run after the first epoch (to fit
a time budget) leaves the steps already taken unchanged.
"""

import math


def lr_factor(step: int, steps_per_epoch: int, epochs: int, warmup_epochs: int = 0,
              kind: str = "constant", restart_epochs: int = 10) -> float:
    """The multiplier of the peak learning rate at optimizer step ``step`` (0-based)."""
    warmup = warmup_epochs * steps_per_epoch
    total = max(epochs * steps_per_epoch, 1)
    if step < warmup:
        return (step + 1) / warmup
    if kind == "constant":
        return 1.0
    if kind == "cosine":
        progress = min((step - warmup) / max(total - warmup, 1), 1.0)
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    if kind == "cosine_restarts":
        cycle = max(restart_epochs * steps_per_epoch, 1)
        progress = ((step - warmup) % cycle) / cycle
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"unknown schedule {kind!r}; choose constant, cosine or cosine_restarts")

