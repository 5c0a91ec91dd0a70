"""The pretraining config. Defaults are the paper's ([P] App. C): GPT2-small with rotary,
96 sequences x 512 tokens per step, 80,000 steps, AdamW lr 1e-3, 1,000 warm-up steps, cosine
decay to 1e-4. The window length is `model.context` (one field, so the two cannot disagree).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from knowlab.errors import KnowlabError
from knowlab.models.presets import ModelConfig
from knowlab.train.optim import OptimConfig


@dataclass
class PretrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    steps: int = 80_000
    # Alternative budget (train/budget.py): the steps that give every person at least this many
    # passes over one bio entry (the paper: ~540). Set one of the two; the other is 0. A
    # command-line override of one zeroes the other (load_pretrain_config), so
    # `--preset tiny exposures=300` works although the preset sets steps.
    exposures: float = 0.0
    batch: int = 96  # global batch in sequences of model.context tokens, over all ranks
    micro_batch: int = 0  # sequences per forward on one rank; 0 = the whole per-rank batch
    seed: int = 0  # model init, data order, mixed-training window choice
    # Mixed training ([P] Section 3): the share of windows made of P_train QAs; 0 = bios only.
    qa_ratio: float = 0.0
    # clm: next-token prediction. mlm: GBERT's whole-word masked LM ([P] App. H; train/mlm.py),
    # for model.arch=gbert; App. H's optimiser is lr 3e-4 cosine to 3e-5, 150,000 steps.
    objective: Literal["clm", "mlm"] = "clm"
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU
    compile: bool = False  # torch.compile the model (worth it on GPU, not for short CPU runs)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int = 0  # torch.set_num_threads; 0 leaves torch's default
    deterministic: bool = False  # torch.use_deterministic_algorithms (bitwise resume on GPU)
    parallel: Literal["ddp", "fsdp"] = "ddp"  # under torchrun; a single process wraps nothing
    checkpoint_every: int = 1000  # steps; 0 = only the final export
    keep_last: int = 2  # checkpoints kept on disk
    log_every: int = 10  # steps between metrics.jsonl lines
    eval_every: int = 0  # steps between evaluation hooks; 0 = only at the end
    # Evaluations spread evenly over the run, whatever its steps (with an exposure budget the
    # steps are known only once the dataset is read); > 0 replaces eval_every.
    evals: int = 0

    def validate(self) -> None:
        if self.exposures < 0 or self.steps < 0:
            raise KnowlabError(f"steps and exposures must be 0 or more, got steps={self.steps}, exposures={self.exposures}")
        if self.exposures > 0 and self.steps > 0:
            raise KnowlabError(f"both steps={self.steps} and exposures={self.exposures} are set; set one budget and "
                               "the other to 0 (exposures are resolved into steps from the dataset)")
        if self.exposures == 0 and self.steps < 1:
            raise KnowlabError("no training budget: set steps (at least 1) or exposures (per person, e.g. 300)")
        if self.batch < 1:
            raise KnowlabError(f"batch must be at least 1, got {self.batch}")
        for key in ("micro_batch", "threads", "checkpoint_every", "eval_every", "evals"):
            if getattr(self, key) < 0:
                raise KnowlabError(f"{key} must be 0 or more, got {getattr(self, key)}")
        if self.keep_last < 1:
            raise KnowlabError(f"keep_last must be at least 1, got {self.keep_last}")
        if self.log_every < 1:
            raise KnowlabError(f"log_every must be at least 1, got {self.log_every}")
        if not 0.0 <= self.qa_ratio <= 1.0:
            raise KnowlabError(f"qa_ratio must be within [0, 1], got {self.qa_ratio}")
        if (self.objective == "mlm") != (self.model.arch == "gbert"):
            raise KnowlabError(f"objective={self.objective} does not fit model.arch={self.model.arch}: "
                               "the bidirectional gbert trains with objective=mlm, causal models with clm")
        if self.model.context < 2:
            raise KnowlabError(f"model.context must be at least 2, got {self.model.context}")

    def per_rank(self, world: int) -> tuple[int, int]:
        """(sequences per rank per step, micro-batches per step) for `world` ranks."""
        if self.batch % world:
            raise KnowlabError(f"batch ({self.batch}) must be divisible by the number of processes ({world})")
        local = self.batch // world
        micro = self.micro_batch or local
        if local % micro:
            raise KnowlabError(f"the per-process batch ({local}) must be divisible by micro_batch ({micro})")
        return local, local // micro


# Fields that change what a run computes; resuming under different values is refused.
RESULT_KEYS = ("model", "optim", "steps", "exposures", "batch", "seed", "qa_ratio", "objective")


def budget_overrides(overrides: dict[str, str]) -> dict[str, str]:
    """An override of `steps` or `exposures` replaces the budget of the layers below it: the
    other one becomes 0, so a preset's `steps` does not clash with `exposures=E` given later."""
    out = dict(overrides)
    if "exposures" in out and "steps" not in out:
        out["steps"] = "0"
    elif "steps" in out and "exposures" not in out:
        out["exposures"] = "0"
    return out
