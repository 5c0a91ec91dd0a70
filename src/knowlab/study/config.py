"""Study presets (`configs/study/<preset>.yaml`): the scale of every stage of a study.

A preset names the stage presets it builds on (pretrain/finetune/probe) and the overrides it
applies to them, so a reader can follow a number in the report back to one YAML file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from knowlab.errors import KnowlabError
from knowlab.study.manipulation import ManipulationConfig

STUDIES = ("augmentation", "mixed", "probing", "celebrity", "mixed-scaling", "gbert", "manipulation")


@dataclass
class ScalingPoint:
    name: str = "base"
    people: int = 0  # 0 = the preset's data.people
    qa_ratio: float = 0.8
    size: str = ""  # model size; "" = the pretrain preset's
    steps: int = 0  # 0 = the mixed study's steps


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
    mixed_eval_every: int = 100
    celebrity_people: int = 0  # celebrities; 0 = as many as the minority
    celebrity_variant: str = "multi5+permute"
    minority_variant: str = "single+permute1"
    scaling: list[ScalingPoint] = field(default_factory=list)
    gbert_steps: int = 0  # 0 = the pretrain preset's steps
    gbert_variant: str = "single"  # bios GBERT is BIO-pretrained on before QA finetuning
    manipulation: ManipulationConfig = field(default_factory=ManipulationConfig)  # Part 3.2 (study/manipulation.py)
    # For --dry-run estimates only; the source says where the figure was measured.
    assumed_tokens_per_s: float = 0.0
    throughput_source: str = ""

    def validate(self) -> None:
        if self.parallel < 1:
            raise KnowlabError(f"parallel must be at least 1, got {self.parallel}")
        from knowlab.data.spec import parse_spec

        singles = [self.celebrity_variant, self.minority_variant, self.gbert_variant]
        for v in self.augmentation_variants + self.probing_variants + singles:
            parse_spec(v)
