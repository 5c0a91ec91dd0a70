"""Checkpoints that survive a kill at any moment.

A checkpoint is a folder `checkpoints/step-NNNNNNN/` holding
    model.safetensors  the full (unwrapped, unsharded) weights; tied copies stored once
    trainer.pt         optimizer, scheduler, data-stream position, RNG states, step
    COMPLETE           written last (JSON: step, files)
It is built under a hidden temporary name, every file fsynced, then renamed into place, and the
parent folder fsynced. A kill mid-write leaves a temporary folder (or, on a file system without
atomic rename, a folder without COMPLETE); both are ignored, so the previous checkpoint is what
`resume: auto` loads. Older checkpoints beyond `keep_last` are removed only after the new one is
complete. RNG states are rank 0's; the data order does not depend on them (see packing.py).
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from knowlab.errors import KnowlabError
from knowlab.io import replace_dir
from knowlab.models.runtime import unwrap
from knowlab.train.distributed import Dist, barrier

MARKER = "COMPLETE"
_NAME = re.compile(r"^step-(\d+)$")


def step_name(step: int) -> str:
    return f"step-{step:07d}"


def is_complete(path: str | Path) -> bool:
    path = Path(path)
    return (path / MARKER).is_file() and (path / "model.safetensors").is_file() and (path / "trainer.pt").is_file()


def list_checkpoints(root: str | Path) -> list[Path]:
    """Complete checkpoints under `root`, oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _NAME.match(p.name)) and is_complete(p)]
    return [p for _, p in sorted(found)]


def latest(root: str | Path) -> Path | None:
    ckpts = list_checkpoints(root)
    return ckpts[-1] if ckpts else None


# ---- state ------------------------------------------------------------------------------------

def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def _dedupe(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop later names of tensors sharing storage (tied embeddings); safetensors refuses them."""
    seen: set[tuple[int, tuple[int, ...]]] = set()
    out = {}
    for name, t in state.items():
        key = (t.untyped_storage().data_ptr(), tuple(t.shape))
        if t.numel() and key in seen:
            continue
        seen.add(key)
        out[name] = t.detach().contiguous()
    return out


def _drop_aliases(state: dict[str, torch.Tensor], model) -> dict[str, torch.Tensor]:
    """Drop the later names of parameters that are one Parameter (tied embeddings). A gathered
    FSDP2 state holds a separate copy under each name, which _dedupe's storage test cannot see."""
    first: dict[int, str] = {}
    out = dict(state)
    for name, p in model.named_parameters(remove_duplicate=False):
        if id(p) not in first:
            first[id(p)] = name
        elif first[id(p)] in out:
            out.pop(name, None)
    return out


def _full_states(model, optimizer, d: Dist) -> tuple[dict, dict]:
    """Model and optimizer states as full tensors (FSDP2 gathers: call on every rank)."""
    if d.parallel == "fsdp":
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict, get_optimizer_state_dict

        opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
        return get_model_state_dict(model, options=opts), get_optimizer_state_dict(model, optimizer, options=opts)
    return unwrap(model, peft=False).state_dict(), optimizer.state_dict()


def model_state(model, d: Dist) -> dict[str, torch.Tensor]:
    if d.parallel == "fsdp":
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return unwrap(model, peft=False).state_dict()


def load_weights(model, path: str | Path, d: Dist | None = None) -> None:
    """Load model.safetensors of a checkpoint (or any safetensors of the same model)."""
    from safetensors.torch import load_file

    state = load_file(str(path))
    if d is not None and d.parallel == "fsdp":
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

        set_model_state_dict(model, state, options=StateDictOptions(full_state_dict=True, strict=False))
        return
    plain = unwrap(model, peft=False)
    result = plain.load_state_dict(state, strict=False)
    tied = set(plain.state_dict()) - set(_dedupe(plain.state_dict()))
    missing = set(result.missing_keys) - tied
    if missing or result.unexpected_keys:
        raise KnowlabError(f"{path}: weights do not fit the model (missing {sorted(missing)[:3]}, unexpected {result.unexpected_keys[:3]})")


# ---- save / load ------------------------------------------------------------------------------

def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def save(root: str | Path, step: int, model, optimizer, scheduler, stream_state: dict, d: Dist,
         keep_last: int = 2, extra: dict | None = None) -> Path | None:
    """Write checkpoint `step` under `root` (collective under FSDP; rank 0 writes). Returns its path."""
    from safetensors.torch import save_file

    weights, optim = _full_states(model, optimizer, d)
    weights = _drop_aliases(weights, unwrap(model))
    root = Path(root)
    final = root / step_name(step)
    if d.is_main:
        root.mkdir(parents=True, exist_ok=True)
        tmp = root / f".{final.name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        save_file(_dedupe(weights), str(tmp / "model.safetensors"), metadata={"step": str(step)})
        trainer = {"step": step, "optimizer": optim, "scheduler": scheduler.state_dict(),
                   "stream": stream_state, "rng": rng_state(), "extra": extra or {}}
        torch.save(trainer, tmp / "trainer.pt")
        for name in ("model.safetensors", "trainer.pt"):
            _fsync_file(tmp / name)
        with open(tmp / MARKER, "w") as fh:
            json.dump({"step": step, "files": ["model.safetensors", "trainer.pt"]}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        _fsync_dir(tmp)
        replace_dir(tmp, final)  # final exists when re-running from an older checkpoint given by path
        _fsync_dir(root)
        prune(root, keep_last)
    barrier(d)
    return final


def prune(root: Path, keep_last: int) -> None:
    """Remove complete checkpoints beyond the newest `keep_last`, and leftovers of killed writes."""
    for stale in root.glob(".step-*"):
        shutil.rmtree(stale, ignore_errors=True)
    for p in root.iterdir():
        if _NAME.match(p.name) and not is_complete(p):
            shutil.rmtree(p, ignore_errors=True)
    for p in list_checkpoints(root)[:-keep_last]:
        shutil.rmtree(p, ignore_errors=True)


def load(path: str | Path, model, optimizer, scheduler, d: Dist) -> dict[str, Any]:
    """Restore weights, optimizer, scheduler and RNG from a checkpoint; returns trainer state."""
    path = Path(path)
    if not is_complete(path):
        raise KnowlabError(f"{path}: not a complete checkpoint (needs {MARKER}, model.safetensors, trainer.pt)")
    load_weights(model, path / "model.safetensors", d)
    trainer = torch.load(path / "trainer.pt", map_location="cpu", weights_only=False)
    if d.parallel == "fsdp":
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        set_optimizer_state_dict(model, optimizer, optim_state_dict=trainer["optimizer"],
                                 options=StateDictOptions(full_state_dict=True))
    else:
        optimizer.load_state_dict(trainer["optimizer"])
    scheduler.load_state_dict(trainer["scheduler"])
    set_rng_state(trainer["rng"])
    return trainer
