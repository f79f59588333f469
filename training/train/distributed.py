"""Multi-GPU training through torchrun + DistributedDataParallel (nothing home-made).

``torchrun --nproc_per_node=N -m training recipe ...`` sets WORLD_SIZE/RANK/LOCAL_RANK; each
rank then trains on its shard of the epoch's crops and DDP averages the gradients.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass

import torch
from torch import distributed as dist
from torch import nn

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def shard(self, n: int) -> slice:
        return slice(self.rank, n, self.world_size)

    def barrier(self) -> None:
        """Ranks wait here until rank 0 has written what the next step reads."""
        if self.distributed:
            dist.barrier()

    def wrap(self, module: nn.Module) -> nn.Module:
        if not self.distributed:
            return module
        ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(module, device_ids=ids)


def relaunch_command(argv: list[str], device: str = "auto") -> list[str] | None:
    """The torchrun command that reruns this CLI on every GPU, or None to run here.

    Used when several GPUs are visible and we are not already under torchrun: the work then
    runs as DistributedDataParallel, one process per GPU (torch's own launcher, nothing custom).
    """
    if "WORLD_SIZE" in os.environ or device == "cpu" or not torch.cuda.is_available():
        return None
    n = torch.cuda.device_count()
    if n < 2:
        return None
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc_per_node={n}", "-m", "training", *argv]


def init_runtime(device: str = "auto", threads: int = 0) -> Runtime:
    """CUDA when present (or asked for), else CPU; joins the torchrun group when launched by it.

    ``threads`` > 0 caps torch's intra-op threads: on a shared machine, OpenMP workers that spin
    against other processes make small-kernel training several times slower than one thread.
    """
    if threads < 0:
        raise ValueError(f"threads={threads}; expected 0 (torch's default) or more")
    if threads:
        torch.set_num_threads(threads)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but torch sees no CUDA device; use --device cpu")
    if world > 1:
        rank = int(os.environ["RANK"])
        local = int(os.environ.get("LOCAL_RANK", rank))
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device == "cuda" else "gloo")
        dev = torch.device(f"cuda:{local}") if device == "cuda" else torch.device("cpu")
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        log.info("distributed training: rank %d of %d on %s", rank, world, dev)
        return Runtime(dev, rank, world)
    return Runtime(torch.device(device))
