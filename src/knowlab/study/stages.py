"""The typed config each planned run will run with, resolved when the plan is built.

A study's runs are `knowlab` CLI calls, executed later in subprocesses. Resolving each call's
config here (the same `load` the stage's CLI uses, from the same preset and overrides) means a
typo such as `pretrain.stepz=5` or a bad value fails before anything runs, with one line naming
the key and the run, and the dry run counts tokens from the config rather than from argv.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from knowlab.config import load, parse_overrides, preset_path
from knowlab.errors import KnowlabError

if TYPE_CHECKING:
    from knowlab.study.plan import Run


def _split(argv: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """(--flag values, key=value overrides) of a run's argv."""
    flags, overrides = {}, []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--") and "=" not in arg and i + 1 < len(argv):
            flags[arg[2:]] = argv[i + 1]  # the planner writes every flag with a value
            i += 1
        elif "=" in arg:
            overrides.append(arg)
        i += 1
    return flags, parse_overrides(overrides)


def resolve(kind: str, argv: list[str]) -> Any:
    """The resolved stage config of a run of `kind` with `argv`, or None for kinds configured by
    flags alone (eval, eval-tasks)."""
    flags, over = _split(argv)
    if kind == "data":
        from knowlab.data.config import DataConfig

        return load(DataConfig, None, over)
    if kind == "pretrain":
        from knowlab.train.config import PretrainConfig, budget_overrides

        return load(PretrainConfig, preset_path("pretrain", flags["preset"]), budget_overrides(over))
    if kind == "finetune":
        from knowlab.train.finetune import FinetuneConfig

        return load(FinetuneConfig, preset_path("finetune", flags["preset"]), over)
    if kind in ("probe-p", "probe-q"):
        from knowlab.probe.types import load_probe_config

        return load_probe_config(kind[-1], preset=flags["preset"], overrides=over)
    if kind == "tasks":
        from knowlab.data.tasks import TaskConfig

        keys = {"tasks": "tasks", "train-people": "train_people", "pairs": "pairs", "hints": "hints", "seed": "seed"}
        return load(TaskConfig, None, {keys[k]: v for k, v in flags.items() if k in keys})
    return None


def attach(run: Run) -> Run:
    """`run` with `config` set, or one line naming the run and what is wrong with its settings."""
    try:
        run.config = resolve(run.kind, run.argv)  # load() validates what it builds
    except KnowlabError as exc:
        raise KnowlabError(f"{run.kind} run '{run.name}' of the study: {exc}") from None
    return run
