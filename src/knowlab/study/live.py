"""The table a study prints while it runs: one line per finished run, a row per evaluation."""

from __future__ import annotations

import json
from pathlib import Path

from knowlab.data.schema import ATTRIBUTES, SHORT
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

    def render(self) -> str:
        if not self.lines:  # every evaluation was cached: the report has them, an empty table says nothing
            return "\nNo evaluation ran this time; the report has every result."
        return "\n".join(["\nQA exact match on P_test (%); BIO = first-token memorisation of P_test bios",
                          self.head, *self.lines])


def _tasks_line(root: Path, run: Run) -> str:
    """One manipulation eval: mean P_test accuracy answer-only, and with the hint where asked."""
    test = json.loads((run.path(root) / "eval_tasks.json").read_text())["splits"].get("test", {})

    def mean(mode: str, key: str) -> str:
        v = test.get(mode, {}).get(key, {}).get("mean")
        return "-" if v is None else f"{100 * v:.1f}"

    return (f"{'manipulation':24s} {run.name[:40]:40s} answer {mean('answer', 'exact')}%, "
            f"with hint {mean('hint', 'exact')}% (hint acc {mean('hint', 'hint')}%)")
