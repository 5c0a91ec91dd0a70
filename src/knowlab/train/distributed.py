"""One code path for one process and for torchrun: DDP by default, FSDP2 as an option.

Under torchrun (WORLD_SIZE > 1) the process group is gloo on CPU and nccl on CUDA; each rank
uses cuda:LOCAL_RANK. A single process wraps nothing and every collective here is a no-op, so
the training loop never branches on the world size. Only rank 0 writes files.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch

from knowlab.models.runtime import pick_device


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    parallel: str = "none"  # none | ddp | fsdp

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def setup(device_pref: str = "auto", parallel: str = "ddp") -> Dist:
    """Join the torchrun process group if there is one; pick this rank's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_pref, local_rank)
    if world == 1:
        return Dist(device=device)
    import torch.distributed as dist

    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo", device_id=device if device.type == "cuda" else None)
    return Dist(rank=rank, world=world, local_rank=local_rank, device=device, parallel=parallel)


def teardown(d: Dist) -> None:
    if d.active:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def wrap(model: torch.nn.Module, d: Dist) -> torch.nn.Module:
    """DDP or FSDP2 around `model` (already on d.device); the model itself for one process."""
    if not d.active:
        return model
    if d.parallel == "fsdp":
        from torch.distributed.fsdp import fully_shard

        # Shard each transformer block, then the rest (embeddings, final norm, tied head).
        for block in _blocks(model):
            fully_shard(block)
        fully_shard(model)
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [d.device.index] if d.device.type == "cuda" else None
    return DDP(model, device_ids=ids)


def _blocks(model: torch.nn.Module) -> list[torch.nn.Module]:
    for name in ("layers", "h"):  # GPTNeoX/Llama, GPT-2
        for module in model.modules():
            blocks = getattr(module, name, None)
            if isinstance(blocks, torch.nn.ModuleList):
                return list(blocks)
    return []


def no_sync(model: torch.nn.Module, d: Dist, last_micro: bool):
    """Skip the gradient all-reduce on all but the last micro-batch of an accumulation."""
    if last_micro or not d.active:
        return contextlib.nullcontext()
    if d.parallel == "ddp":
        return model.no_sync()
    model.set_requires_gradient_sync(False)
    return _resync(model)


@contextlib.contextmanager
def _resync(model):
    try:
        yield
    finally:
        model.set_requires_gradient_sync(True)


def mean(value: torch.Tensor, d: Dist) -> torch.Tensor:
    """Average of a scalar tensor over ranks."""
    if d.active:
        import torch.distributed as dist

        value = value.detach().clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        value /= d.world
    return value


def barrier(d: Dist) -> None:
    if d.active:
        import torch.distributed as dist

        dist.barrier()


def broadcast_object(obj, d: Dist):
    """Rank 0's `obj` on every rank (e.g. which checkpoint to resume from)."""
    if not d.active:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
