"""Several training processes under ``torchrun``: one per device, gradients averaged by DDP.

``torchrun`` sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; ``Distributed.from_env``
joins the process group they describe (NCCL on CUDA, gloo on the CPU) and
gives each process its device. Without them it is a single process and every
method is a no-op, so ``training.train`` runs one code path either way.

How the work is split, and why:

- Every process draws the same shuffled order and the same augmentation for
  each *global* batch, then keeps its own share (``shard``). The random streams
  therefore do not depend on the number of processes: a 2-process run sees the
  batches a 1-process run sees, and ``--resume`` works with another process
  count. Augmenting the whole global batch in every process costs little next
  to the forward and backward passes.
- BatchNorm normalises each process's share (per-device statistics, as in
  torchvision's reference scripts); ``--sync-bn`` converts it to SyncBatchNorm,
  which PyTorch implements on CUDA only, for per-device batches too small for
  good statistics.
- Only rank 0 writes checkpoints, weights, cards, reports and the progress bar.
"""

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls, device_preference: str = "auto") -> "tuple[Distributed, torch.device]":
        """Join the process group ``torchrun`` describes (if any); returns it and this process's device."""
        from fer_desktop.torch_classifier import select_device

        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size <= 1:
            return cls(), select_device(device_preference)
        rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        device = select_device(device_preference)
        if device.type == "cuda":
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                    device_id=device if device.type == "cuda" else None)
        return cls(rank, world_size, local_rank), device

    def shard(self, items: torch.Tensor) -> torch.Tensor:
        """This process's share of a global batch: every ``world_size``-th item from ``rank`` on."""
        return items[self.rank::self.world_size] if self.enabled else items

    def sum(self, value: torch.Tensor) -> torch.Tensor:
        """The sum over processes (in place, returned for convenience)."""
        if self.enabled:
            dist.all_reduce(value, op=dist.ReduceOp.SUM)
        return value

    def any(self, flag: bool, device: torch.device) -> bool:
        """True in every process if ``flag`` is true in any: decisions all processes must share."""
        if not self.enabled:
            return flag
        value = torch.tensor([1.0 if flag else 0.0], device=device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def smallest(self, value: int, device: torch.device) -> int:
        """The smallest of every process's ``value``."""
        if not self.enabled:
            return value
        tensor = torch.tensor([value], dtype=torch.int64, device=device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MIN)
        return int(tensor.item())

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def wrap(self, model: torch.nn.Module, device: torch.device, sync_bn: bool = False) -> torch.nn.Module:
        """The module the training loop calls: ``model`` itself, or DDP around it (sharing its parameters)."""
        if not self.enabled:
            return model
        if sync_bn:
            if device.type != "cuda":
                raise ValueError("--sync-bn needs CUDA: PyTorch's SyncBatchNorm does not run on the CPU")
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def wait_for_all() -> None:
    """Block until every process of the group (if this process joined one) gets here."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def close_process_group() -> None:
    """Leave the process group, if this process joined one (end of a torchrun run)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
