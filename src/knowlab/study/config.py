"""Study presets (`configs/study/<preset>.yaml`): the scale of every stage of a study.

A preset names the stage presets it builds on (pretrain/finetune/probe) and the overrides it
applies to them, so a reader can follow a number in the report back to one YAML file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from knowlab.errors import KnowlabError
from knowlab.study.manipulation import ManipulationConfig

STUDIES = ("augmentation", "mixed", "probing", "celebrity", "mixed-scaling", "gbert", "emergence", "manipulation")


@dataclass
class ScalingPoint:
    name: str = "base"
    people: int = 0  # 0 = the preset's data.people
    qa_ratio: float = 0.8
    size: str = ""  # model size; "" = the pretrain preset's
    steps: int = 0  # 0 = the mixed study's steps
    exposures: float = 0.0  # bio exposures per person instead of steps; 0 = the mixed study's budget


def _short(x: float) -> str:
    """3e-4 rather than 0.0003: how the paper writes its learning rates."""
    if x and abs(x) < 0.01:
        mantissa, exponent = f"{x:e}".split("e")
        return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
    return f"{x:g}"


@dataclass
class FinetuneGrid:
    """Several QA finetunes of one model, the best of each method reported, as [P] App. D does:
    LoRA at each q/v rank, full finetuning at every lr x weight decay. Empty (the default): the
    finetune preset's one finetune, with the run keys studies had before grids existed."""

    lora_r: list[int] = field(default_factory=list)  # LoRA ranks on query/value
    full_lr: list[float] = field(default_factory=list)
    full_weight_decay: list[float] = field(default_factory=list)

    def settings(self) -> list[tuple[str, str, dict[str, Any]]]:
        """(method, label, finetune overrides) per setting."""
        out: list[tuple[str, str, dict[str, Any]]] = [
            ("lora", f"lora-r{r}", {"method": "lora", "lora.r": r}) for r in self.lora_r]
        out += [("full", f"full-lr{_short(lr)}-wd{_short(wd)}", {"method": "full", "full_lr": lr, "optim.weight_decay": wd})
                for lr in self.full_lr for wd in self.full_weight_decay]
        return out

    def describe(self) -> str:
        parts = []
        if self.lora_r:
            parts.append(f"LoRA q/v r in {{{', '.join(map(str, self.lora_r))}}}")
        if self.full_lr:
            parts.append(f"full finetuning, lr in {{{', '.join(map(_short, self.full_lr))}}} x weight decay "
                         f"in {{{', '.join(map(_short, self.full_weight_decay))}}}")
        return "; ".join(parts) + " (the best setting of each method is reported)"

    def validate(self) -> None:
        if bool(self.full_lr) != bool(self.full_weight_decay):
            raise KnowlabError("finetune_grid: full_lr and full_weight_decay go together (both empty or both set)")
        if any(r < 1 for r in self.lora_r):
            raise KnowlabError(f"finetune_grid.lora_r: ranks must be at least 1, got {self.lora_r}")


@dataclass
class EmergenceConfig:
    """`study run emergence`: for each result of the paper that a small scale may not show, a
    sweep along the axis that drives it (docs/emergence.md). Budgets are exposures per person
    (train/budget.py), so points with different N, variants and QA ratios compare."""

    # Result 1, mixed training on single bios (QA ratio: the study's mixed_qa_ratio):
    mixed_people: list[int] = field(default_factory=list)  # N axis, at mixed_exposures
    mixed_exposures: float = 100.0
    mixed_exposure_points: list[float] = field(default_factory=list)  # exposures axis, at data.people
    # Result 6: the minority's exposures, with celebrities and alone.
    celebrity_exposures: list[float] = field(default_factory=list)
    # Results 4-5: Q-probe next to QA accuracy (BIO pretrain + finetune) of probe_variant.
    probe_variant: str = "multi5+permute+fullname"
    probe_widths: list[int] = field(default_factory=list)  # model width axis (layers as the preset's)
    probe_people: list[int] = field(default_factory=list)  # N axis, at the preset's width
    probe_exposures: float = 0.0  # 0 = the pretrain preset's steps
    probe_exposure_points: list[float] = field(default_factory=list)  # exposures axis, at probe_exposure_people
    probe_exposure_people: int = 0  # 0 = data.people
    probe_depths: list[int] = field(default_factory=list)  # layers axis (heads, width as the preset's), at:
    probe_depth_people: int = 0  # 0 = data.people
    # Result 7: GBERT (masked LM) on gbert_variant bios, then the study's finetune.
    gbert_exposures: list[float] = field(default_factory=list)
    evals: int = 6  # evaluations along each sweep pretraining, for Figure 1's curves


@dataclass
class StudyConfig:
    description: str = ""
    data: dict[str, Any] = field(default_factory=dict)  # DataConfig keys shared by every dataset
    pretrain_preset: str = "tiny"
    pretrain: dict[str, Any] = field(default_factory=dict)  # dot-key overrides
    finetune_preset: str = "tiny"
    finetune: dict[str, Any] = field(default_factory=dict)
    probe_preset: str = "tiny"
    probe: dict[str, Any] = field(default_factory=dict)
    eval_beams: int = 1
    eval_batch_size: int = 256
    parallel: int = 1  # independent runs at once (one per GPU; on a CPU, as the cores serve best)
    threads_per_run: int = 0  # torch threads per run; 0 = cores / parallel
    augmentation_variants: list[str] = field(default_factory=lambda: ["single", "multi5+permute+fullname"])
    probing_variants: list[str] = field(default_factory=lambda: ["single", "multi5+permute+fullname"])
    mixed_qa_ratio: float = 0.8
    mixed_steps: int = 0  # 0 = the pretrain preset's steps
    # Bio exposures per person of mixed training (train/budget.py); 0 = the pretrain preset's
    # budget. The paper mixes in the same tokens as BIO pretraining, so at QA_r 0.8 a person's
    # bio is read a fifth as often: 108 times, not 540.
    mixed_exposures: float = 0.0
    # The minority's exposures in the celebrity study (both runs); 0 = the pretrain preset's budget.
    celebrity_exposures: float = 0.0
    mixed_eval_every: int = 100
    celebrity_people: int = 0  # celebrities; 0 = as many as the minority
    celebrity_variant: str = "multi5+permute"
    minority_variant: str = "single+permute1"
    scaling: list[ScalingPoint] = field(default_factory=list)
    # Finetunes per model in the augmentation, celebrity and gbert studies (GPT's rows).
    finetune_grid: FinetuneGrid = field(default_factory=FinetuneGrid)
    gbert_steps: int = 0  # 0 = the pretrain preset's steps
    gbert_variant: str = "single"  # bios GBERT is BIO-pretrained on before QA finetuning
    # QA ratios of GBERT's mixed training, the best reported ([P] App. H: 0.2 and 0.8); empty =
    # mixed_qa_ratio alone.
    gbert_qa_ratios: list[float] = field(default_factory=list)
    gbert_in_all: bool = False  # whether `study run all` includes the gbert study
    emergence: EmergenceConfig = field(default_factory=EmergenceConfig)
    manipulation: ManipulationConfig = field(default_factory=ManipulationConfig)  # Part 3.2 (study/manipulation.py)
    # For --dry-run estimates only; the source says where the figure was measured.
    assumed_tokens_per_s: float = 0.0
    throughput_source: str = ""

    def validate(self) -> None:
        if self.parallel < 1:
            raise KnowlabError(f"parallel must be at least 1, got {self.parallel}")
        from knowlab.data.spec import parse_spec

        for ratio in self.gbert_qa_ratios:
            if not 0.0 < ratio < 1.0:
                raise KnowlabError(f"gbert_qa_ratios: each must be within (0, 1), got {ratio}")
        for e in self.emergence.probe_exposure_points:
            if not e > 0:
                raise KnowlabError(f"emergence.probe_exposure_points: each must be above 0 (passes over each "
                                   f"person's bios), got {e}")
        for d in self.emergence.probe_depths:
            if not d >= 1:
                raise KnowlabError(f"emergence.probe_depths: each must be a number of layers, 1 or more, got {d}")
        singles = [self.celebrity_variant, self.minority_variant, self.gbert_variant, self.emergence.probe_variant]
        for v in self.augmentation_variants + self.probing_variants + singles:
            parse_spec(v)


def plain_number(value: float) -> int | float:
    """300.0 -> 300, so a budget's argv matches the same budget given on the command line."""
    return int(value) if float(value).is_integer() else value
