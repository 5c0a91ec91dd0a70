"""One `knowlab study run`: resolve the preset, plan, run (cached), report."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from knowlab.config import deep_merge, from_dict, preset_path, read_yaml
from knowlab.errors import KnowlabError
from knowlab.io import code_version, machine_info, write_json_atomic
from knowlab.study.config import StudyConfig
from knowlab.study.plan import Planner, Run
from knowlab.study.runner import execute, has_outputs, is_done

STAGES = ("pretrain", "finetune", "probe")


def merged_study_name(old: str, new: str) -> str:
    """The name of a study folder after `new` runs into a folder holding `old`: each study once."""
    parts = old.split("+")
    return "all" if new == "all" else "+".join(parts + [new] * (new not in parts))


def read_study_preset(preset: str, seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """A study preset's YAML; `base: NAME` makes it NAME's settings with its own on top, so a
    preset that differs from another in a few budgets says only those (configs/study/small.yaml)."""
    if preset in seen:
        raise KnowlabError(f"study preset '{preset}': its `base` chain returns to itself ({' -> '.join((*seen, preset))})")
    raw = read_yaml(preset_path("study", preset))
    base = raw.pop("base", None)
    if base is None:
        return raw
    if not isinstance(base, str):
        raise KnowlabError(f"study preset '{preset}': base must be the name of another study preset, got {base!r}")
    return deep_merge(read_study_preset(base, (*seen, preset)), raw)


def load_study_config(preset: str, extra: dict[str, str]) -> StudyConfig:
    """The preset's StudyConfig with study-level overrides; `data.*` keys go into its data dict."""
    raw = read_study_preset(preset)
    own = {k: v for k, v in extra.items() if not k.startswith(tuple(s + "." for s in STAGES))}
    data = {k[5:]: v for k, v in own.items() if k.startswith("data.")}
    own = {k: v for k, v in own.items() if not k.startswith("data.")}
    cfg = from_dict(StudyConfig, raw, own)
    if data:
        cfg.data = {**cfg.data, **data}
    return cfg


def _plan_dict(study: str, preset: str, seeds: list[int], runs: list[Run], command: str) -> dict[str, Any]:
    return {
        "study": study, "preset": preset, "seeds": seeds, "command": command,
        "code_version": code_version(), "machine": machine_info(),
        "runs": [{"kind": r.kind, "name": r.name, "key": r.key, "argv": r.argv, "output": r.output,
                  "deps": [d.key for d in r.deps], "tags": r.tags} for r in runs],
    }


def _keep_sweep_points(old_runs: list[dict], new_runs: list[dict]) -> None:
    """A run planned again keeps the emergence points an earlier plan gave it: a sweep run an
    axis at a time shares a run between axes (the people axis's point at the exposures axis's
    budget), and the report must still find it on both."""
    earlier = {r["key"]: r.get("tags", {}).get("emergence", []) for r in old_runs}
    for run in new_runs:
        points = run["tags"].get("emergence")
        before = earlier.get(run["key"], [])
        if points is not None or before:
            run["tags"] = {**run["tags"], "emergence": [*before, *[p for p in points or [] if p not in before]]}


def _data_stats(data: Run, root: Path, cache: dict) -> tuple[dict, bool]:
    """(bio stats per group, exact?) of a data run: read when generated, else from a sample."""
    from knowlab.data.dataset import Dataset
    from knowlab.train.budget import bio_stats, sample_stats

    if data.key not in cache:
        if has_outputs(data, root):
            cache[data.key] = (bio_stats(Dataset(data.path(root))), True)
        else:
            cache[data.key] = (sample_stats(data.config), False)
    return cache[data.key]


def pretrain_budget(run: Run, root: Path, cache: dict):
    """(Budget, exact?, the paper's exposures for a run of this shape) of a pretraining run,
    resolved as the run will resolve it."""
    from knowlab.train.budget import budget_for, paper_exposures

    cfg = run.config
    stats, exact = _data_stats(run.deps[0], root, cache)
    budget = budget_for(stats, cfg.batch, cfg.model.context, cfg.qa_ratio, cfg.steps, cfg.exposures)
    return budget, exact, paper_exposures(stats, cfg.qa_ratio, cfg.objective)


def dry_run_text(cfg: StudyConfig, runs: list[Run], root: Path) -> str:
    from knowlab.train.budget import PAPER_EXPOSURES

    lines = [f"{'kind':10s} {'run':42s} {'steps':>9s} {'tokens':>15s} {'exposures':>18s} {'paper':>6s}  status"]
    total_tokens = 0
    cache: dict = {}
    estimated = False
    for run in runs:
        steps, tokens, exposures, theirs = "", "", "", ""
        if run.kind == "pretrain":
            budget, exact, paper = pretrain_budget(run, root, cache)
            theirs = f"{paper:,.0f}"
            t = budget.steps * budget.tokens_per_step
            total_tokens += t
            # What is derived from the dataset is an estimate until the dataset exists.
            by_exposures = budget.asked == "exposures"
            mark_steps = "" if exact or not by_exposures else "~"
            mark_exp = "" if exact or by_exposures else "~"
            estimated |= not exact
            steps, tokens = f"{mark_steps}{budget.steps:,}", f"{mark_steps}{t:,}"
            exposures = mark_exp + "/".join(f"{e:,.0f}" for _, e in sorted(budget.exposures.items()))
        status = "done" if is_done(run, root) else "to run"
        lines.append(f"{run.kind:10s} {run.name[:42]:42s} {steps:>9s} {tokens:>15s} {exposures:>18s} {theirs:>6s}  {status}")
    lines.append(f"\n{len(runs)} runs; pretraining {total_tokens:,} tokens in all. Exposures: passes over one "
                 f"bio entry per person (per group, alphabetical, where groups differ). Paper: the exposures of "
                 f"the group with the fewest in the paper's run of this kind (BIO pretraining ~{PAPER_EXPOSURES}, "
                 "mixed training at QA_r 0.8 ~108, the celebrity minority ~90).")
    if estimated:
        lines.append("~: from a 1,000-person sample of a dataset not generated yet (tokens per bio within about 1%).")
    if cfg.assumed_tokens_per_s:
        hours = total_tokens / cfg.assumed_tokens_per_s / 3600
        lines.append(f"Estimated pretraining time: {hours:.1f} h at {cfg.assumed_tokens_per_s:,.0f} tokens/s "
                     f"({cfg.throughput_source}); finetuning, evaluation and probing come on top.")
    return "\n".join(lines)


def plan_summary(cfg: StudyConfig, study: str) -> str:
    """What the plan compares, in words: the finetunes per model, the probed variants, GBERT's
    QA ratios and the bios its finetuning starts from."""
    grid = cfg.finetune_grid
    lines = ["QA finetuning: " + (grid.describe() if grid.settings() else
                                  f"one finetune per model (finetune preset `{cfg.finetune_preset}`)")]
    if study in ("probing", "all"):
        lines.append(f"Probed variants ({len(cfg.probing_variants)}, P and Q): {', '.join(cfg.probing_variants)}")
    if study == "gbert" or (study == "all" and cfg.gbert_in_all):
        ratios = cfg.gbert_qa_ratios or [cfg.mixed_qa_ratio]
        best = " (the best reported)" if len(ratios) > 1 else ""
        lines.append(f"GBERT: mixed training on single bios at QA_r {', '.join(f'{r:g}' for r in ratios)}{best}; "
                     f"BIO-pretrained on `{cfg.gbert_variant}` bios before QA finetuning")
    return "\n".join(lines) + "\n"


def run_study(study: str, preset: str, out: Path, seeds: list[int], extra: dict[str, str],
              dry_run: bool = False, command: str = "", parallel: int | None = None) -> int:
    cfg = load_study_config(preset, extra)
    planner = Planner(cfg, preset, seeds, extra)
    rows = planner.plan(study)
    runs = planner.ordered()
    root = out.resolve()
    if dry_run:
        print(plan_summary(cfg, study))
        print(dry_run_text(cfg, runs, root))
        return 0
    root.mkdir(parents=True, exist_ok=True)
    previous = root / "study.json"
    plan = _plan_dict(study, preset, seeds, runs, command)
    if previous.is_file():  # keep runs of earlier studies in this folder in the report
        old = json.loads(previous.read_text())
        keys = {r["key"] for r in plan["runs"]}
        _keep_sweep_points(old.get("runs", []), plan["runs"])
        plan["runs"] = [r for r in old.get("runs", []) if r["key"] not in keys] + plan["runs"]
        # the report names every command whose runs it shows, not only the last one
        earlier = {k: old[k] for k in ("study", "command", "seeds", "code_version", "finished") if k in old}
        plan["history"] = old.get("history", []) + [earlier]
        plan["study"] = merged_study_name(old.get("study", study), study)
    write_json_atomic(previous, plan)

    from knowlab.study.live import LiveTable

    table = LiveTable(root, rows)
    started = time.time()
    print(f"study {study}, preset {preset}, seeds {seeds}: {len(runs)} runs in {root}")
    execute(runs, root, parallel=parallel or cfg.parallel, threads=cfg.threads_per_run, on_done=table.update,
            on_tick=table.tick)
    plan["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    plan["seconds"] = round(time.time() - started, 1)
    write_json_atomic(previous, plan)
    from knowlab.report.build import build_report

    report = build_report(root)
    print(table.render())
    print(f"\nfinished in {plan['seconds'] / 60:.1f} min; report: {report} (and report.html, results.csv)")
    return 0


__all__ = ["run_study", "load_study_config", "KnowlabError"]
