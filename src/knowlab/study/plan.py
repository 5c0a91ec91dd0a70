"""From a study and a preset to a plan: the runs (data, pretrain, finetune, eval, probe) and
their dependencies.

Every run is a `knowlab` CLI call. Its key hashes the call and the keys of what it depends on,
so a run is reused by every study that needs the same thing (the `single` model of the
augmentation study is the `single` model of the probing study) and a changed setting makes a
new run instead of silently reusing an old one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from knowlab.study import stages
from knowlab.study.config import StudyConfig
from knowlab.study.config import plain_number as _num

# GBERT ([P] App. H). Pretraining at the paper preset: lr 3e-4 cosine to 3e-5 over 150,000 steps
# (warm-up, batch and AdamW as GPT's); smaller presets keep their own optimiser, tuned for their
# scale. Finetuning: the four LoRA variants, with linear decay.
GBERT_PAPER = {"optim.lr": 3e-4, "steps": 150_000}
GBERT_LORA = {
    "qv8+emb128": {"lora.r": 8, "lora.embedding_r": 128},
    "qv32+emb128": {"lora.r": 32, "lora.embedding_r": 128},
    "qv8+embfull": {"lora.r": 8, "lora.full_embedding": "true"},
    "qv32+embfull": {"lora.r": 32, "lora.full_embedding": "true"},
}
GBERT_FINETUNE = {"method": "lora", "optim.schedule": "linear", "optim.min_lr_ratio": 0.0}

# Paths inside argv are written relative to the study folder as "@/..." and resolved at run time,
# so a study folder can be moved and its keys do not depend on where it lives.
ROOT = "@"


@dataclass
class Run:
    kind: str  # data | pretrain | finetune | eval | probe-p | probe-q | probe-readout | tasks | eval-tasks
    name: str  # what the report calls it, e.g. the variant
    argv: list[str]
    deps: list[Run] = field(default_factory=list)
    tags: dict[str, Any] = field(default_factory=dict)  # study, variant, seed, ... for the report
    output: str = ""  # set in __post_init__: "@/<kind>/<name>-<key>" (a file for eval)
    # The resolved, typed stage config (study/stages.py), set when the planner adds the run.
    config: Any = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        payload = json.dumps([self.kind, self.argv, [d.key for d in self.deps]], sort_keys=True)
        self.key = hashlib.sha256(payload.encode()).hexdigest()[:10]
        safe = self.name.replace("+", "_").replace("/", "_")
        suffix = ".json" if self.kind == "eval" else ""
        self.output = f"{ROOT}/{self.kind}/{safe}-{self.key}{suffix}"

    def resolved_argv(self, root: Path) -> list[str]:
        out = [a.replace(f"{ROOT}/", f"{root}/") for a in self.argv]
        out = [a.replace("{out}", str(root / self.output[2:])) for a in out]
        return out

    def path(self, root: Path) -> Path:
        return root / self.output[2:]


def _kv(overrides: dict[str, Any]) -> list[str]:
    return [f"{k}={v}" for k, v in sorted(overrides.items())]


def _with_budget(*layers: dict[str, Any]) -> dict[str, Any]:
    """Merge override layers; a layer that sets `steps` or `exposures` (not both) replaces the
    budget of the layers before it, as on the command line (train/config.budget_overrides)."""
    out: dict[str, Any] = {}
    for layer in layers:
        if "exposures" in layer and "steps" not in layer:
            out.pop("steps", None)
        elif "steps" in layer and "exposures" not in layer:
            out.pop("exposures", None)
        out.update(layer)
    return out


class Planner:
    """Builds runs, de-duplicating identical ones across studies and seeds."""

    def __init__(self, cfg: StudyConfig, preset: str, seeds: list[int], extra: dict[str, str]):
        self.cfg, self.preset, self.seeds, self.extra = cfg, preset, seeds, extra
        self.runs: dict[str, Run] = {}

    def _add(self, run: Run) -> Run:
        if run.key not in self.runs:
            self.runs[run.key] = stages.attach(run)  # a bad setting fails here, before anything runs
        return self.runs[run.key]

    def add_run(self, kind: str, name: str, argv: list[str], deps: list[Run], tags: dict[str, Any]) -> Run:
        """A run of a kind the planner has no builder for (the manipulation study's task folders
        and task evaluations), de-duplicated like the others."""
        return self._add(Run(kind, name, argv, deps, tags=tags))

    # ---- building blocks ----------------------------------------------------------------
    def data(self, variant: str, seed: int, **over: Any) -> Run:
        conf = {**self.cfg.data, "variant": variant, "seed": seed, **over}
        return self._add(Run("data", f"{variant}-s{seed}", ["data", "generate", "--out", "{out}", *_kv(conf)],
                             tags={"variant": variant, "seed": seed}))

    def pretrain(self, data: Run, name: str, seed: int, **over: Any) -> Run:
        conf = _with_budget(self.cfg.pretrain, {"seed": seed}, over, self._stage_extra("pretrain"))
        argv = ["train", "pretrain", "--data", data.output, "--out", "{out}",
                "--preset", self.cfg.pretrain_preset, "--resume", "auto", *_kv(conf)]
        return self._add(Run("pretrain", f"{name}-s{seed}", argv, [data], tags={**data.tags, "name": name}))

    def finetune(self, model: Run, data: Run, seed: int, name: str | None = None, **over: Any) -> Run:
        # The study evaluates in its own run (cached, shared with the report), not inside finetuning.
        conf = {**self.cfg.finetune, "seed": seed, "final_eval": "false", **over, **self._stage_extra("finetune")}
        argv = ["train", "finetune", "--model", model.output, "--data", data.output, "--out", "{out}",
                "--preset", self.cfg.finetune_preset, *_kv(conf)]
        return self._add(Run("finetune", name or model.name, argv, [model, data], tags=dict(model.tags)))

    def finetunes(self, model: Run, data: Run, seed: int) -> list[Run]:
        """The study's finetunes of `model`: the preset's one, or one per setting of the
        finetune grid, tagged with its method and label so the report keeps the best of each."""
        settings = self.cfg.finetune_grid.settings()
        if not settings:
            return [self.finetune(model, data, seed)]
        runs = []
        for method, label, over in settings:
            run = self.finetune(model, data, seed, name=f"{model.name}-{label}", **over)
            run.tags.update(finetune=label, method=method)
            runs.append(run)
        return runs

    def evaluate(self, model: Run, data: Run, split: str = "both") -> Run:
        argv = ["eval", "qa", model.output, "--data", data.output, "--split", split,
                "--beams", str(self.cfg.eval_beams), "--batch-size", str(self.cfg.eval_batch_size),
                "--out", "{out}"]
        return self._add(Run("eval", f"{model.kind}-{model.name}", argv, [model, data], tags=dict(model.tags)))

    def probe(self, kind: str, model: Run, data: Run) -> Run:
        conf = {**self.cfg.probe, **self._stage_extra("probe")}
        argv = ["probe", kind, model.output, "--data", data.output, "--out", "{out}",
                "--preset", self.cfg.probe_preset, *_kv(conf)]
        return self._add(Run(f"probe-{kind}", model.name, argv, [model, data], tags=dict(model.tags)))

    def readout(self, model: Run, data: Run) -> Run:
        """The probe-free control of a probe (probe/readout.py): one thread, so it can share the CPU."""
        argv = ["probe", "readout", model.output, "--data", data.output, "--out", "{out}", "--threads", "1"]
        return self._add(Run("probe-readout", model.name, argv, [model, data], tags=dict(model.tags)))

    def _stage_extra(self, stage: str) -> dict[str, str]:
        """CLI overrides such as `pretrain.steps=100` go to that stage's runs."""
        prefix = stage + "."
        return {k[len(prefix):]: v for k, v in self.extra.items() if k.startswith(prefix)}

    # ---- studies ------------------------------------------------------------------------
    def augmentation(self) -> list[Run]:
        rows = []
        for seed in self.seeds:
            for variant in self.cfg.augmentation_variants:
                data = self.data(variant, seed)
                model = self.pretrain(data, variant, seed)
                for tuned in self.finetunes(model, data, seed):
                    rows.append(self._tag(self.evaluate(tuned, data), "augmentation", bio_model=model))
                rows.append(self._tag(self.evaluate(model, data, split="test"), "augmentation-pretrained"))
        return rows

    def mixed(self) -> list[Run]:
        rows = []
        for seed in self.seeds:
            data = self.data("single", seed)
            over = {"qa_ratio": self.cfg.mixed_qa_ratio, "eval_every": self.cfg.mixed_eval_every,
                    **self._mixed_budget()}
            model = self.pretrain(data, f"mixed-single-qa{self.cfg.mixed_qa_ratio}", seed, **over)
            rows.append(self._tag(self.evaluate(model, data), "mixed"))
        return rows

    def probing(self) -> list[Run]:
        rows = []
        for seed in self.seeds:
            for variant in self.cfg.probing_variants:
                data = self.data(variant, seed)
                model = self.pretrain(data, variant, seed)
                rows.append(self._tag(self.probe("p", model, data), "probing-p"))
                rows.append(self._tag(self.probe("q", model, data), "probing-q"))
        return rows

    def _mixed_budget(self, steps: int = 0, exposures: float = 0.0) -> dict[str, Any]:
        """A point's own budget, else the mixed study's, else (empty) the pretrain preset's."""
        if steps or exposures:
            return {"steps": steps} if steps else {"exposures": _num(exposures)}
        if self.cfg.mixed_steps:
            return {"steps": self.cfg.mixed_steps}
        return {"exposures": _num(self.cfg.mixed_exposures)} if self.cfg.mixed_exposures else {}

    def celebrity_runs(self, seed: int, **over: Any) -> list[tuple[str, Run]]:
        """Result 6 at one seed: the minority finetuned on celebrity QAs ("celebrity"), its BIO
        memorisation before finetuning ("celebrity-pretrained"), and the minority alone
        ("celebrity-alone"); `over` goes to both pretrainings (e.g. the minority's exposures)."""
        people = int(self.cfg.data.get("people", 500))
        mixed = self.data(self.cfg.minority_variant, seed, celebrities=self.cfg.celebrity_people or people,
                          celebrity_variant=self.cfg.celebrity_variant)
        mixed.tags["name"] = "with-celebrities"
        model = self.pretrain(mixed, f"celebrity-{self.cfg.minority_variant}", seed, **over)
        alone = self.data(self.cfg.minority_variant, seed)
        alone_model = self.pretrain(alone, self.cfg.minority_variant, seed, **over)
        runs = [("celebrity", self.evaluate(t, mixed)) for t in self.finetunes(model, mixed, seed)]
        # The minority's BIO memorisation before finetuning: the effect means little without it.
        runs.append(("celebrity-pretrained", self.evaluate(model, mixed, split="test")))
        runs += [("celebrity-alone", self.evaluate(t, alone)) for t in self.finetunes(alone_model, alone, seed)]
        return runs

    def celebrity(self) -> list[Run]:
        over = {"exposures": _num(self.cfg.celebrity_exposures)} if self.cfg.celebrity_exposures else {}
        return [self._tag(run, study) for seed in self.seeds for study, run in self.celebrity_runs(seed, **over)]

    def mixed_scaling(self) -> list[Run]:
        rows = []
        for seed in self.seeds:
            for point in self.cfg.scaling:
                over_data = {"people": point.people} if point.people else {}
                data = self.data("single", seed, **over_data)
                over: dict[str, Any] = {"qa_ratio": point.qa_ratio, "eval_every": self.cfg.mixed_eval_every}
                if point.size:
                    over["model.size"] = point.size
                over.update(self._mixed_budget(point.steps, point.exposures))
                model = self.pretrain(data, f"scaling-{point.name}", seed, **over)
                run = self._tag(self.evaluate(model, data), "mixed-scaling")
                run.tags["point"] = point.name
                rows.append(run)
        return rows

    def gbert(self) -> list[Run]:
        """Result 7 (App. H): GBERT by mixed training on single bios, and by BIO pretraining on
        `gbert_variant` bios + each of the four LoRA finetunes of App. H and the study's own
        finetune (plus its Q-probe), beside GPT's same runs (those of the mixed and augmentation
        studies: identical runs, so shared and cached across studies)."""
        mlm: dict[str, Any] = {"model.arch": "gbert", "objective": "mlm"}
        if self.cfg.pretrain_preset == "paper":
            mlm.update(GBERT_PAPER)
        if self.cfg.gbert_steps:
            mlm["steps"] = self.cfg.gbert_steps
        rows = self.mixed()
        variant = self.cfg.gbert_variant
        for seed in self.seeds:
            single = self.data("single", seed)
            for ratio in self.cfg.gbert_qa_ratios or [self.cfg.mixed_qa_ratio]:
                over = {**mlm, "qa_ratio": ratio, "eval_every": self.cfg.mixed_eval_every}
                mixed = self.pretrain(single, f"gbert-mixed-single-qa{ratio}", seed, **over)
                mixed.tags["qa_ratio"] = ratio
                rows.append(self._tag(self.evaluate(mixed, single), "gbert-mixed"))

            data = self.data(variant, seed)
            gpt = self.pretrain(data, variant, seed)
            rows += [self._tag(self.evaluate(t, data), "augmentation", bio_model=gpt)
                     for t in self.finetunes(gpt, data, seed)]
            model = self.pretrain(data, f"gbert-{variant}", seed, **mlm)
            rows.append(self._tag(self.probe("q", model, data), "gbert-probe-q"))
            # The study's own finetune (what GPT's row used) compares like with like; the four
            # LoRA variants are App. H's.
            finetunes = {f"study {self.cfg.finetune.get('method', 'finetune')}": {}}
            finetunes |= {label: {**GBERT_FINETUNE, **lora} for label, lora in GBERT_LORA.items()}
            for label, settings in finetunes.items():
                tuned = self.finetune(model, data, seed, name=f"{model.name}-{label.replace(' ', '-')}", **settings)
                tuned.tags.update(name=f"gbert-{variant} {label}", lora=label)
                rows.append(self._tag(self.evaluate(tuned, data), "gbert-finetune"))
        return rows

    def manipulation(self) -> list[Run]:
        """Part 3.2 (knowledge manipulation), built in study/manipulation.py."""
        from knowlab.study.manipulation import manipulation_runs

        return manipulation_runs(self)

    @staticmethod
    def _tag(run: Run, study: str, **extra: Any) -> Run:
        # One run can serve several studies (mixed and mixed-scaling share their base point), so
        # it keeps every study it belongs to; "study" stays the first.
        studies = [*run.tags.get("studies", []), study]
        run.tags = {"study": study, **run.tags, "studies": list(dict.fromkeys(studies)),
                    **{k: v.output for k, v in extra.items()}}
        return run

    def plan(self, study: str) -> list[Run]:
        from knowlab.study import emergence

        builders = {"augmentation": self.augmentation, "mixed": self.mixed, "probing": self.probing,
                    "celebrity": self.celebrity, "mixed-scaling": self.mixed_scaling, "gbert": self.gbert,
                    "emergence": lambda: emergence.plan(self), "manipulation": self.manipulation}
        # GBERT stays out of "all" unless the preset says otherwise (the paper's does): two more
        # pretrainings that, at the tiny preset's steps, do not yet memorise the bios
        # (docs/gbert.md); run `study run gbert` on its own. The emergence sweeps are many runs
        # each, and manipulation (Part 3.2) is a paper of its own: each has its own command.
        skip = {"emergence", "manipulation"} | (set() if self.cfg.gbert_in_all else {"gbert"})
        if study == "all":
            return [r for name in builders if name not in skip for r in builders[name]()]
        return builders[study]()

    def ordered(self) -> list[Run]:
        """All runs, dependencies first."""
        seen: dict[str, Run] = {}

        def visit(run: Run) -> None:
            for dep in run.deps:
                visit(dep)
            seen.setdefault(run.key, run)

        for run in list(self.runs.values()):
            visit(run)
        return list(seen.values())
