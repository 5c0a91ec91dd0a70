"""AdamW and the learning-rate schedule shared by pretraining, finetuning and probing.

Paper defaults ([P] App. C, D): AdamW eps 1e-6; pretraining wd 0.1, lr 1e-3, 1,000 warm-up
steps, cosine decay to 0.1 x; finetuning no warm-up, cosine to 0.1 x; probing linear to 0.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Literal

from knowlab.errors import KnowlabError


@dataclass
class OptimConfig:
    lr: float = 1e-3
    weight_decay: float = 0.1
    eps: float = 1e-6
    beta1: float = 0.9
    beta2: float = 0.98  # not stated in Part 3.1; a common LM pretraining choice
    warmup_steps: int = 1000
    schedule: Literal["cosine", "linear", "constant"] = "cosine"
    min_lr_ratio: float = 0.1  # cosine/linear end at lr * min_lr_ratio
    grad_clip: float = 1.0  # 0 disables clipping

    def validate(self) -> None:
        if self.lr <= 0:
            raise KnowlabError(f"optim.lr must be positive, got {self.lr}")
        if self.warmup_steps < 0:
            raise KnowlabError(f"optim.warmup_steps must be 0 or more, got {self.warmup_steps}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise KnowlabError(f"optim.min_lr_ratio must be within [0, 1], got {self.min_lr_ratio}")


def lr_factor(step: int, total_steps: int, cfg: OptimConfig) -> float:
    """Multiplier of cfg.lr at `step` (0-based): linear warm-up, then the decay of cfg.schedule."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return 1.0
    span = max(1, total_steps - cfg.warmup_steps)
    t = min(1.0, (step - cfg.warmup_steps) / span)
    if cfg.schedule == "linear":
        return 1.0 - (1.0 - cfg.min_lr_ratio) * t
    return cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * t))


def build_optimizer(params, cfg: OptimConfig, fused: bool = False):
    """AdamW with weight decay on matrices only (not on biases, norms or 1-d parameters).

    fused=True asks for the fused kernel and falls back, with a warning, to the default
    implementation (the same update) where this torch has none for the parameters' device or dtype.
    """
    import torch

    params = [p for p in params if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    if fused:
        why = fused_unsupported(params)
        if why is not None:
            warnings.warn(f"fused AdamW is not available here ({why}); using the default AdamW", stacklevel=2)
            fused = False
    # Fresh group dicts: the optimizer writes its defaults into the ones it is given.
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps, fused=fused or None)


def fused_unsupported(params) -> str | None:
    """None when fused AdamW steps on every (device, dtype) of `params`, else the reason it does not.

    Torch versions differ in where they refuse (construction or the first step) and in which
    devices have kernels, so a one-element optimizer per kind of parameter is stepped for real.
    """
    import torch

    kinds = {(p.device, p.dtype) for p in params}
    for device, dtype in sorted(kinds, key=str):
        try:
            probe = torch.nn.Parameter(torch.zeros(1, device=device, dtype=dtype))
            probe.grad = torch.zeros_like(probe)
            torch.optim.AdamW([probe], fused=True).step()
        except (RuntimeError, ValueError, TypeError, NotImplementedError) as exc:
            text = str(exc).strip()
            return f"{device.type}/{str(dtype).replace('torch.', '')}: " + (text.splitlines()[0] if text else type(exc).__name__)
    return None


def build_scheduler(optimizer, total_steps: int, cfg: OptimConfig):
    import torch

    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, total_steps, cfg))
