"""The knowledge-manipulation study (Part 3.2): finetune the BIO-pretrained model on each task
family and score it in both test-time modes.

The base model is the augmentation study's pretraining of `variant` (multi5+permute, the
paper's manipulation base M): the same `Planner.data` and `Planner.pretrain` calls, so a study
folder that already holds it reuses it. Per seed:
- retrieval and inverse search: one task folder each (P_train / P_test), one finetune, one eval;
- classification and comparison: for each training population (a fraction of P_train, tested on
  all of P_test) two finetunes, without hints and with half the rows hinted (the paper's
  "no-hint" and "hint" training), each scored answer-only and, where a hint exists, with it;
- inverse search again on each of `inverse_variants` (its own pretraining);
- the base model's six-QA extraction (the augmentation study's own finetune and eval, so shared
  with it), the reference that retrieval is read against.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from knowlab.data.tasks import FAMILIES
from knowlab.errors import KnowlabError

if TYPE_CHECKING:
    from knowlab.study.plan import Planner, Run

CURVE_FAMILIES = ("classification", "comparison")  # trained on growing populations, with/without hints


@dataclass
class ManipulationConfig:
    variant: str = "multi5+permute"  # the BIO-pretrained base model (the augmentation study's run)
    families: list[str] = field(default_factory=lambda: list(FAMILIES))
    # Classification/comparison training populations as fractions of P_train. With the paper's
    # N = 100k (P_train 50k) these are its 2.5k, 5k, 10k, 25k and 50k.
    train_fractions: list[float] = field(default_factory=lambda: [0.05, 0.1, 0.2, 0.5, 1.0])
    pairs: int = 2  # comparison partners per person
    # Finetune overrides for every task finetune, on top of the study's finetune settings.
    # Paper (App. C): LoRA rank 16 on q/v (128 on the embedding), lr 1e-3, whatever the study's
    # own QA finetune is.
    finetune: dict[str, Any] = field(default_factory=lambda: {"method": "lora", "lora.r": 16, "lora_lr": 1e-3})
    # Per-family overrides on top of `finetune`, e.g. {retrieval: {steps: 350}}: families differ in
    # how many tasks (so rows per person) one finetune holds.
    family_finetune: dict[str, dict[str, Any]] = field(default_factory=dict)
    eval_rows: int = 0  # test rows scored per task; 0 = all
    # The paper's M': start every task finetune from the six-QA extraction finetune of the base
    # model (the augmentation study's finetune run) instead of the BIO-pretrained model M.
    extraction_first: bool = False
    # More BIO-pretrained bases for inverse search only, e.g. the reversed bios of [P] §5:
    # [reverse1, reverse2, reverse6, permute+reverse6]. Each is one more pretraining.
    inverse_variants: list[str] = field(default_factory=list)

    def validate(self) -> None:
        from knowlab.data.spec import parse_spec

        for v in [self.variant, *self.inverse_variants]:
            parse_spec(v)
        for key, names in (("families", self.families), ("family_finetune", list(self.family_finetune))):
            bad = [f for f in names if f not in FAMILIES]
            if bad or (key == "families" and not names):
                raise KnowlabError(f"manipulation.{key}: '{bad[0] if bad else ''}' is not a task family; "
                                   f"valid: {', '.join(FAMILIES)}")
        if not self.train_fractions or any(not 0 < f <= 1 for f in self.train_fractions):
            raise KnowlabError(f"manipulation.train_fractions must be fractions in (0, 1], got {self.train_fractions}")
        if self.pairs < 1 or self.eval_rows < 0:
            raise KnowlabError("manipulation.pairs must be at least 1 and manipulation.eval_rows 0 or more")


def train_sizes(planner: Planner) -> list[int]:
    """Training populations (people) of the preset's data: fractions of P_train, distinct, rising."""
    from knowlab.data.config import DataConfig

    defaults = DataConfig()
    people = int(planner.cfg.data.get("people", defaults.people))
    fraction = float(planner.cfg.data.get("train_fraction", defaults.train_fraction))
    p_train = int(round(people * fraction))
    return sorted({max(2, min(p_train, int(round(f * p_train)))) for f in planner.cfg.manipulation.train_fractions})


def tasks_run(planner: Planner, data: Run, family: str, seed: int, train_people: int = 0,
              hints: str = "none") -> Run:
    mcfg = planner.cfg.manipulation
    argv = ["data", "tasks", data.output, "--out", "{out}", "--tasks", family, "--train-people", str(train_people),
            "--hints", hints, "--pairs", str(mcfg.pairs), "--seed", str(seed)]
    name = f"{data.name}-{family}" + (f"-n{train_people}-{hints}" if family in CURVE_FAMILIES else "")
    return planner.add_run("tasks", name, argv, [data], tags={**data.tags})


def eval_run(planner: Planner, model: Run, tasks: Run) -> Run:
    argv = ["eval", "tasks", model.output, "--data", tasks.output, "--out", "{out}",
            "--batch-size", str(planner.cfg.eval_batch_size), "--beams", str(planner.cfg.eval_beams), "--max-rows", str(planner.cfg.manipulation.eval_rows)]
    return planner.add_run("eval-tasks", model.name, argv, [model, tasks], tags=dict(model.tags))


def _task_eval(planner: Planner, data: Run, model: Run, family: str, seed: int, n: int, hints: str) -> Run:
    """Task folder -> finetune of `model` -> eval, tagged for the report."""
    tasks = tasks_run(planner, data, family, seed, n, hints)
    mcfg = planner.cfg.manipulation
    settings = {**mcfg.finetune, **mcfg.family_finetune.get(family, {})}
    tuned = planner.finetune(model, tasks, seed, name=f"manip-{tasks.name}", eval_every=0, **settings)
    tuned.tags.update(family=family, train_people=n, hints=hints, name=tasks.name,
                      base="M'" if model.kind == "finetune" else "M")
    return planner._tag(eval_run(planner, tuned, tasks), "manipulation")


def _base(planner: Planner, variant: str, seed: int) -> tuple[Run, Run]:
    """(data, model): the BIO-pretrained model M, or with extraction_first its QA finetune M'."""
    data = planner.data(variant, seed)
    model = planner.pretrain(data, variant, seed)
    if planner.cfg.manipulation.extraction_first:
        model = planner.finetune(model, data, seed)  # the augmentation study's own finetune run
    return data, model


def manipulation_runs(planner: Planner) -> list[Run]:
    mcfg = planner.cfg.manipulation
    rows = []
    for seed in planner.seeds:
        data, model = _base(planner, mcfg.variant, seed)
        # The reference for retrieval: M's six-QA extraction, the augmentation study's own runs
        # (M' itself where extraction_first; the planner returns the same run either way).
        extraction = planner.finetune(planner.pretrain(data, mcfg.variant, seed), data, seed)
        rows.append(planner._tag(planner.evaluate(extraction, data), "manipulation-extraction"))
        for family in mcfg.families:
            if family in CURVE_FAMILIES:
                settings = [(n, hints) for n in train_sizes(planner) for hints in ("none", "mixed")]
            else:
                settings = [(0, "none")]
            rows += [_task_eval(planner, data, model, family, seed, n, hints) for n, hints in settings]
        for variant in mcfg.inverse_variants:
            if variant != mcfg.variant:
                other_data, other = _base(planner, variant, seed)
                rows.append(_task_eval(planner, other_data, other, "inverse", seed, 0, "none"))
    return rows
