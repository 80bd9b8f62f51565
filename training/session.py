"""A training run in progress: its settings, model, optimiser, random generators and
checkpointed state, from the first epoch to the last (``training.trainer`` drives it).
"""

import dataclasses
import math
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from fer_desktop.models import create_model
from training.checkpoint import CHECKPOINT_NAME, cpu_state_dict, load_checkpoint, save_checkpoint
from training.distributed import Distributed
from training.engine import Feed, build_optimizer
from training.precision import autocast_bf16
from training.pretrained import initialise, start_from_weights
from training.recipes import Recipe, normalisation, same_recipe
from training.streaming import StreamedFaces, should_stream


@dataclass
class RunConfig:
    """Where and how a run happens; the hyperparameters are in ``Recipe``."""

    model: str
    data: str
    out: str
    seed: int = 0
    device: str = "auto"
    limit: int | None = None  # at most this many training faces (quick trials)
    budget_s: float | None = None  # wall-clock limit in seconds; the epoch count adapts to it
    resume: bool = False
    stop_after: int | None = None  # stop (resumably) after this many epochs of this invocation
    deterministic: bool = False
    compile: bool = False
    threads: int | None = None
    progress: bool = True
    export: str | None = None  # also copy the weights and card here (e.g. the app's weights/ folder)
    runtime: bool = True  # export the runtime file (<model>.onnx, training.export) at the end
    sync_bn: bool = False  # under torchrun on CUDA: SyncBatchNorm instead of per-device statistics
    labels: str = "fer2013"  # fer2013 | ferplus | ferplus-soft (training.ferplus)
    # Teachers' .safetensors (one path or several): their mean probabilities become a second target.
    distill: str | list[str] | None = None
    init_from: str | None = None  # a trained .safetensors of the same model to start from (e.g. at a larger size)
    stream: str = "auto"  # auto | on | off: training faces streamed to the device (training.streaming)
    workers: int = 2  # DataLoader workers when streaming


def seed_everything(seed: int, deterministic: bool = False) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    elif torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick the fastest kernels


@dataclass
class Session:
    """A run in progress: the model, its optimiser and random generators, and ``state``, which
    (with them) is what a checkpoint saves and ``--resume`` restores."""

    run: RunConfig
    recipe: Recipe
    dist: Distributed
    device: torch.device
    feed: Feed
    model: torch.nn.Module
    train_model: torch.nn.Module  # the model as trained (DDP-wrapped under torchrun); shares its parameters
    optimizer: torch.optim.Optimizer
    data_gen: torch.Generator
    aug_gen: torch.Generator
    init: str
    checkpoint_path: Path
    state: dict = field(default_factory=lambda: {"epoch": 0, "step": 0, "epochs_planned": 0, "history": [],
                                                 "best": None, "training_time_s": 0.0})

    def checkpoint(self) -> None:
        if not self.dist.is_main:
            return
        rng = {"torch": torch.get_rng_state(), "data": self.data_gen.get_state(),
               "augment": self.aug_gen.get_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        save_checkpoint(self.checkpoint_path, {
            "model": cpu_state_dict(self.model), "optimizer": self.optimizer.state_dict(), **self.state,
            "init": self.init, "rng": rng, "recipe": self.recipe.to_dict(),
            "run": dataclasses.asdict(self.run)})

    def resume(self) -> None:
        ckpt = load_checkpoint(self.checkpoint_path)
        if not same_recipe(ckpt["recipe"], self.recipe) or ckpt["run"]["model"] != self.run.model:
            raise ValueError(f"{self.checkpoint_path}: checkpoint was made with another model or recipe; "
                             "use a new --out or drop --resume")
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        self.data_gen.set_state(ckpt["rng"]["data"])
        self.aug_gen.set_state(ckpt["rng"]["augment"])
        if self.device.type == "cuda" and "cuda" in ckpt["rng"]:
            torch.cuda.set_rng_state(ckpt["rng"]["cuda"], self.device)
        self.state = {k: ckpt[k] for k in self.state}
        self.init = ckpt["init"]
        if self.dist.is_main:
            print(f"resuming {self.run.model} after epoch {self.state['epoch']}", file=sys.stderr)


def start_session(run: RunConfig, recipe: Recipe, dist: Distributed, device: torch.device,
                  out: Path) -> Session:
    """The model built and initialised on ``device``, with its optimiser and seeded generators."""
    # Deterministic runs stay in fp32; bf16 only where the device runs it natively.
    feed = Feed(recipe.input_size, *normalisation(run.model), device,
                bf16=autocast_bf16(device) and not run.deterministic)
    model = create_model(run.model, **recipe.architecture)
    init = initialise(model, recipe)
    if run.init_from:
        init = start_from_weights(model, run.init_from, run.model, recipe.architecture)
    model.to(device)
    if feed.channels_last:
        model = model.to(memory_format=torch.channels_last)
    train_model = dist.wrap(model, device, run.sync_bn)  # shares ``model``'s parameters
    session = Session(run, recipe, dist, device, feed, model, train_model, build_optimizer(model, recipe),
                      data_gen=torch.Generator().manual_seed(run.seed),
                      aug_gen=torch.Generator(device=device).manual_seed(run.seed + 1),
                      init=init, checkpoint_path=out / CHECKPOINT_NAME)
    session.state["epochs_planned"] = recipe.epochs
    return session


def fit_to_budget(s: Session, epoch_costs: list[float], deadline: float) -> None:
    """Plan the epoch count that fits the time left (checkpointed when it changes)."""
    state, planned, now = s.state, s.state["epochs_planned"], time.perf_counter()
    if state["epoch"] <= max(1, planned // 3):
        # Fit the schedule to the budget after each epoch of the first third, from the
        # median cost so far: one epoch slowed by other work on the machine does not
        # cost the whole run epochs. Later the schedule stays put. Every process must
        # plan the same count, so all take the smallest.
        typical = float(np.median(epoch_costs))
        fit = state["epoch"] + max(0, math.floor((deadline - now) / typical))
        fit = s.dist.smallest(fit, s.device)
        state["epochs_planned"] = max(state["epoch"], min(s.recipe.epochs, fit))
    elif s.dist.any(deadline - now < epoch_costs[-1], s.device):
        state["epochs_planned"] = state["epoch"]
    if state["epochs_planned"] != planned:
        s.checkpoint()


def training_faces(faces, device: torch.device, run: RunConfig):
    """The training faces on the device (one copy, the fast default) or streamed from where they are."""
    if should_stream(faces, device, run.stream):
        if isinstance(faces, StreamedFaces):
            faces.workers = run.workers
            return faces
        return StreamedFaces(faces.numpy(), workers=run.workers)
    if isinstance(faces, StreamedFaces):
        faces = torch.from_numpy(faces.numpy())
    return faces.to(device)
