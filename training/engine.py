"""One training epoch and batched inference, with the shared preprocessing done on the device."""

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from fer_desktop.emotions import EMOTIONS
from fer_desktop.preprocessing import faces_to_tensor
from training.augment import augment, mixup
from training.distributed import Distributed
from training.recipes import Recipe
from training.streaming import StreamedFaces


@dataclass
class Feed:
    """How faces become model inputs: the card's input size and normalisation, on a device."""

    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    device: torch.device
    bf16: bool = False  # autocast to bf16 (no loss scaling needed): see training.precision
    # oneDNN (CPU) and cuDNN run convolutions fastest channels-last: on a 2-core AMD EPYC,
    # +2 to +33 % training img/s for the custom CNNs (training/benchmark_results.json).
    channels_last: bool = True

    def inputs(self, faces: torch.Tensor) -> torch.Tensor:
        return self.layout(faces_to_tensor(faces, self.input_size, self.mean, self.std, device=self.device))

    def layout(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    @property
    def precision(self) -> str:
        return "bf16-autocast" if self.bf16 else "fp32"

    def autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)


@dataclass
class EpochStats:
    loss: float
    accuracy: float
    images: int
    seconds: float
    steady_seconds: float  # the epoch's duration as its second half ran: without warm-up costs

    @property
    def images_per_s(self) -> float:
        return self.images / max(self.seconds, 1e-9)


def build_optimizer(model: torch.nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    # No weight decay on biases and normalisation parameters (1-d tensors).
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": recipe.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.nesterov)
    if recipe.optimizer == "adam":
        return torch.optim.Adam(groups, lr=recipe.lr)
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=recipe.lr)
    raise ValueError(f"unknown optimizer {recipe.optimizer!r}; choose sgd, adam or adamw")


def train_one_epoch(model, faces: torch.Tensor, labels: torch.Tensor, recipe: Recipe, feed: Feed, optimizer,
                    lr_at: Callable[[int], float], step: int, data_gen: torch.Generator,
                    aug_gen: torch.Generator, progress=None, deadline: float | None = None,
                    dist: Distributed | None = None, soft: torch.Tensor | None = None) -> tuple[EpochStats, int]:
    """Train over one shuffled pass of ``faces``; returns stats and the new step.

    ``faces``: uint8 ``[N, 48, 48]`` on ``feed.device``, or ``StreamedFaces`` whose
    batches are gathered off the device by DataLoader workers (training.streaming).

    The last incomplete batch is dropped (BatchNorm dislikes tiny batches).
    ``deadline`` (``time.perf_counter()`` value) stops the epoch early.
    Under ``torchrun`` (``dist``), ``recipe.batch_size`` is the global batch: each
    process draws and augments all of it and trains on its share (training.distributed).
    ``soft`` (``[N, 7]``, on the device): per-face target distributions instead of ``labels``
    (FER+ votes); accuracy is still counted against ``labels``.
    """
    dist = dist or Distributed()
    model.train()
    n = len(labels)
    bs = min(recipe.batch_size, n)
    order = torch.randperm(n, generator=data_gen)
    streamed = isinstance(faces, StreamedFaces)  # else a uint8 tensor already on the device
    streamed_batches = faces.batches(order, bs, feed.device) if streamed else None
    order = order.to(feed.device)
    total_loss = torch.zeros((), device=feed.device)
    correct = torch.zeros((), device=feed.device, dtype=torch.long)
    seen, local_seen, start = 0, 0, time.perf_counter()
    batches = n // bs
    half_time = None
    for first in range(0, n - bs + 1, bs):
        if first // bs == batches // 2 and batches >= 4:
            if feed.device.type == "cuda":
                torch.cuda.synchronize(feed.device)
            half_time = time.perf_counter()
        idx = order[first:first + bs]
        y = labels[idx]
        x = augment(feed.inputs(next(streamed_batches) if streamed else faces[idx]), recipe.augment, aug_gen, feed.mean,
                    feed.std)
        x, target = mixup(x, y, recipe.mixup_alpha, len(EMOTIONS), aug_gen,
                          soft[idx] if soft is not None else None)
        x, target, y = dist.shard(x), dist.shard(target), dist.shard(y)
        x = feed.layout(x)  # grid_sample returns the default layout
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step)
        with feed.autocast():
            logits = model(x)
            loss = F.cross_entropy(logits.float(), target, label_smoothing=recipe.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if recipe.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
        optimizer.step()
        step += 1
        seen += bs
        total_loss += loss.detach() * len(y)  # this process's share; summed over processes at the end
        local_seen += len(y)
        correct += (logits.detach().argmax(1) == y).sum()
        if progress is not None:
            progress.update(bs)
            if step % 20 == 0:
                elapsed = time.perf_counter() - start
                progress.set_postfix(loss=f"{total_loss.item() / local_seen:.3f}", img_s=f"{seen / elapsed:.0f}")
        if deadline is not None and dist.any(time.perf_counter() > deadline, feed.device):
            break
    if feed.device.type == "cuda":
        torch.cuda.synchronize(feed.device)
    end = time.perf_counter()
    seconds = end - start
    finished = seen == batches * bs
    steady = (end - half_time) * batches / (batches - batches // 2) if half_time and finished else seconds
    dist.sum(total_loss)
    dist.sum(correct)
    seen = max(seen, 1)
    return EpochStats(total_loss.item() / seen, correct.item() / seen, seen, seconds, steady), step


@torch.no_grad()
def predict_logits(model, faces: torch.Tensor, feed: Feed, tta: str = "none", batch_size: int = 512) -> torch.Tensor:
    """Logits ``[N, 7]`` (float32, CPU) for uint8 faces; ``tta='hflip'`` averages with mirrored faces."""
    model.eval()
    out = []
    for first in range(0, len(faces), batch_size):
        x = feed.inputs(faces[first:first + batch_size].to(feed.device))
        with feed.autocast():
            logits = model(x).float()
            if tta == "hflip":
                logits = (logits + model(x.flip(-1)).float()) / 2
        out.append(logits.cpu())
    return torch.cat(out) if out else torch.zeros(0, len(EMOTIONS))


def loss_and_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    labels = labels.cpu()
    return F.cross_entropy(logits, labels).item(), (logits.argmax(1) == labels).float().mean().item()
