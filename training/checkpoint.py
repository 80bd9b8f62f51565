"""Resumable checkpoints as plain data: state dicts, counters, RNG states and the config as a dict.

Everything in them loads with ``torch.load(weights_only=True)``: no pickled
objects of this package, so old checkpoints never break on refactors and
loading one never runs code.
"""

import os
from pathlib import Path

import torch

CHECKPOINT_NAME = "last.pt"


def save_checkpoint(path: str | Path, state: dict) -> Path:
    """Write atomically, so an interrupted save keeps the previous checkpoint intact."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def cpu_state_dict(module: torch.nn.Module) -> dict:
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}
