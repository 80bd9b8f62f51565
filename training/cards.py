"""The card a training run writes beside its weights: how to feed the model, and how it was made.

The recipe's input size, normalisation and test-time augmentation are copied
here once; from then on the card is what every reader of the weights follows
(``fer_desktop.weights``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from fer_desktop.weights import read_card
from training.precision import cpu_name, describe_device
from training.recipes import Recipe, normalisation

if TYPE_CHECKING:
    from training.data import FaceSplits
    from training.session import RunConfig


def training_card(run: RunConfig, recipe: Recipe, data: FaceSplits, state: dict, init: str, selected: int,
                  device: torch.device, precision: str, processes: int) -> dict:
    """The card of the weights a run ends with (its metrics are added once they are measured)."""
    from training.distill import teacher_name

    mean, std = normalisation(run.model)
    card = {
        "model": run.model,
        "architecture": recipe.architecture,
        "input_size": recipe.input_size,
        "mean": list(mean),
        "std": list(std),
        "test_time_augmentation": recipe.tta,
        "recipe": recipe.to_dict(),
        "init": init,
        "epochs": state["epoch"],
        "selected_epoch": selected,
        "seed": run.seed,
        "data": {"source": Path(run.data).name, "sizes": data.sizes(), "limit": run.limit},
        "labels": data.labels,
        "teacher": teacher_name(run.distill) if run.distill else None,
        "training_time_s": round(state["training_time_s"], 1),
        "device": describe_device(device),
        "cpu": cpu_name() if device.type == "cpu" else None,
        "precision": precision,
        "processes": processes,
        "torch": torch.__version__,
    }
    lineage = lineage_of(run.init_from, {
        "init": init, "teacher": card["teacher"], "lr": recipe.lr, "epochs": state["epoch"],
        "training_time_s": card["training_time_s"], "precision": precision, "cpu": card["cpu"]})
    if lineage is not None:
        card["lineage"] = lineage
    return card


def lineage_of(init_from: str | None, run: dict) -> dict | None:
    """The card's ``lineage`` for a run that starts from trained weights (a warm-restart cycle):
    the cycle count, the runs it descends from (oldest first) and their total training time.
    ``run`` summarises this run; weights trained from scratch have no lineage."""
    if not init_from:
        return None
    parent = read_card(init_from)
    before = parent.get("lineage") or {
        "cycle": 0, "total_training_time_s": parent.get("training_time_s") or 0.0,
        "chain": [{"run": 0, "init": parent.get("init"), "teacher": parent.get("teacher"),
                   "epochs": parent.get("epochs"), "training_time_s": parent.get("training_time_s"),
                   "val_accuracy": (parent.get("metrics") or {}).get("val_accuracy"),
                   "test_accuracy": (parent.get("metrics") or {}).get("test_accuracy")}]}
    cycle = before["cycle"] + 1
    return {"cycle": cycle,
            "total_training_time_s": round(before["total_training_time_s"] + run["training_time_s"], 1),
            "chain": [*before["chain"], {"run": cycle, **run}]}
