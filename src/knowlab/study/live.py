"""What a study prints while it runs: a line per run started or finished, a progress line per
running run every few minutes, and a table row per evaluation."""

from __future__ import annotations

import json
from pathlib import Path

from knowlab.data.schema import ATTRIBUTES, SHORT
from knowlab.io import partial_dir
from knowlab.study.plan import Run


class LiveTable:
    def __init__(self, root: Path, rows: list[Run]):
        self.root = root
        self.rows = {r.key for r in rows}
        self.lines: list[str] = []
        head = f"{'study':24s} {'run':40s} {'BIO':>6s} {'mean':>6s} " + " ".join(f"{SHORT[a]:>6s}" for a in ATTRIBUTES)
        self.head = head

    def update(self, run: Run, seconds: float) -> None:
        print(f"done  {run.kind:9s} {run.name} ({seconds / 60:.1f} min)", flush=True)
        if run.kind == "eval-tasks" and run.key in self.rows:  # Part 3.2 (eval/tasks.py)
            self.lines.append(_tasks_line(self.root, run))
            print(self.lines[-1], flush=True)
            return
        if run.kind != "eval" or run.key not in self.rows:
            return
        result = json.loads(run.path(self.root).read_text())
        test = result.get("splits", {}).get("test", {})
        exact, bio = test.get("exact", {}), test.get("bio_first_token", {})

        def pct(d, k):
            return f"{100 * d[k]:6.1f}" if k in d else f"{'-':>6s}"

        line = (f"{run.tags.get('study', ''):24s} {run.name[:40]:40s} {pct(bio, 'mean')} {pct(exact, 'mean')} "
                + " ".join(pct(exact, a) for a in ATTRIBUTES))
        self.lines.append(line)
        if len(self.lines) == 1:
            print(self.head)
        print(line, flush=True)

    def tick(self, run: Run, seconds: float) -> None:
        print(progress_line(run, self.root, seconds), flush=True)

    def render(self) -> str:
        if not self.lines:  # every evaluation was cached: the report has them, an empty table says nothing
            return "\nNo evaluation ran this time; the report has every result."
        return "\n".join(["\nQA exact match on P_test (%); BIO = first-token memorisation of P_test bios",
                          self.head, *self.lines])


def progress_line(run: Run, root: Path, seconds: float) -> str:
    """How far a running run has got, read from the metrics.jsonl its process appends to, so a
    study whose output goes to a file still shows, during an hour-long pretraining, that it
    moves and when it should end."""
    out = run.path(root)
    head = f"  ... {run.kind:9s} {run.name}: {seconds / 60:.1f} min"
    last = _last_step(out / "metrics.jsonl") or _last_step(partial_dir(out) / "metrics.jsonl")
    if last is None:
        return head
    step, total = int(last["step"]), _total_steps(run, out)
    line = f"{head}, step {step:,}" + (f" of {total:,} ({100 * step / total:.0f}%)" if total else "")
    if last.get("tokens_per_s"):
        line += f", {last['tokens_per_s']:,.0f} tokens/s"
    if total and 0 < step < total and last.get("elapsed"):
        # elapsed counts from the run's first step, across resumes, so it matches step
        line += f", about {last['elapsed'] * (total - step) / step / 60:.0f} min left"
    return line


def _last_step(metrics: Path) -> dict | None:
    """The last training row of a metrics.jsonl (evaluation rows carry no loss)."""
    try:
        with open(metrics, "rb") as fh:
            fh.seek(max(0, fh.seek(0, 2) - 8192))
            lines = fh.read().decode(errors="replace").splitlines()
    except OSError:
        return None
    for text in reversed(lines):
        try:
            row = json.loads(text)
        except ValueError:  # the first line of the window may be cut, or the last half-written
            continue
        if isinstance(row, dict) and "loss" in row and "step" in row:
            return row
    return None


def _total_steps(run: Run, out: Path) -> int | None:
    """A pretraining's steps are resolved from exposures at its start (its run.json has them);
    other runs carry them in their stage config."""
    try:
        meta = json.loads((out / "run.json").read_text())
        steps = meta.get("budget", {}).get("steps") or meta.get("config", {}).get("steps")
    except (OSError, ValueError, AttributeError):
        steps = None
    steps = steps or getattr(run.config, "steps", None)
    return steps if isinstance(steps, int) and steps > 0 else None


def _tasks_line(root: Path, run: Run) -> str:
    """One manipulation eval: mean P_test accuracy answer-only, and with the hint where asked."""
    test = json.loads((run.path(root) / "eval_tasks.json").read_text())["splits"].get("test", {})

    def mean(mode: str, key: str) -> str:
        v = test.get(mode, {}).get(key, {}).get("mean")
        return "-" if v is None else f"{100 * v:.1f}"

    return (f"{'manipulation':24s} {run.name[:40]:40s} answer {mean('answer', 'exact')}%, "
            f"with hint {mean('hint', 'exact')}% (hint acc {mean('hint', 'hint')}%)")
