"""Reading finished runs of a study folder into tidy rows (one number per row) for tables,
plots and results.csv."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from knowlab.data.schema import ATTRIBUTES


@dataclass
class StudyRuns:
    root: Path
    plan: dict[str, Any]  # study.json

    @classmethod
    def load(cls, root: str | Path) -> StudyRuns:
        from knowlab.errors import KnowlabError

        root = Path(root)
        path = root / "study.json"
        if not path.is_file():
            raise KnowlabError(f"{root}: not a study folder (no study.json); run 'knowlab study run' first")
        return cls(root, json.loads(path.read_text()))

    def runs(self, study: str | None = None, kind: str | None = None) -> list[dict]:
        out = []
        for run in self.plan["runs"]:
            if study and study not in run["tags"].get("studies", [run["tags"].get("study")]):
                continue
            if kind and run["kind"] != kind:
                continue
            if not (self.root / (run["output"][2:] + ".done.json")).is_file():
                continue
            out.append(run)
        return out

    def path(self, run: dict) -> Path:
        return self.root / run["output"][2:]

    def read_json(self, run: dict, name: str | None = None) -> dict:
        path = self.path(run) / name if name else self.path(run)
        return json.loads(path.read_text())

    def metrics(self, run: dict) -> list[dict]:
        path = self.path(run) / "metrics.jsonl"
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def run_config(self, run: dict) -> dict | None:
        path = self.path(run) / "run.json"
        return json.loads(path.read_text()) if path.is_file() else None


def eval_rows(runs: StudyRuns, study: str) -> list[dict]:
    """Tidy rows from the eval JSONs of one study."""
    rows = []
    for run in runs.runs(study=study, kind="eval"):
        result = runs.read_json(run)
        for split, metrics in result.get("splits", {}).items():
            for metric in ("exact", "first_token", "bio_first_token"):
                for attr, value in (metrics.get(metric) or {}).items():
                    rows.append({
                        "study": study, "name": run["tags"].get("name", run["tags"].get("variant")),
                        "variant": run["tags"].get("variant"), "seed": run["tags"].get("seed"),
                        "point": run["tags"].get("point", ""), "split": split, "metric": metric,
                        "attribute": attr, "value": value,
                        "finetune": run["tags"].get("finetune", ""), "method": run["tags"].get("method", ""),
                    })
    return rows


def best_of_grid(rows: list[dict]) -> list[dict]:
    """Rows of a finetune grid (tagged `finetune`) cut to the best setting of each method per run
    name, by mean P_test exact match over seeds, as the paper reports its best finetune
    ([P] App. D). Kept rows are renamed "<name> (<setting>)" and remember the name as `base`;
    rows outside a grid pass unchanged."""
    scores: dict[tuple, list[float]] = {}
    for r in rows:
        if r.get("finetune") and (r["split"], r["metric"], r["attribute"]) == ("test", "exact", "mean"):
            scores.setdefault((r["name"], r["method"], r["finetune"]), []).append(r["value"])
    best: dict[tuple, tuple[str, float]] = {}
    for (name, method, label), values in scores.items():
        score = sum(values) / len(values)
        if (name, method) not in best or score > best[(name, method)][1]:
            best[(name, method)] = (label, score)
    out = []
    for r in rows:
        if not r.get("finetune"):
            out.append({**r, "base": r["name"]})
        elif best.get((r["name"], r["method"]), ("",))[0] == r["finetune"]:
            out.append({**r, "name": f"{r['name']} ({r['finetune']})", "base": r["name"]})
    return out


def pick(rows: list[dict], **where: Any) -> list[dict]:
    return [r for r in rows if all(r.get(k) == v for k, v in where.items())]


def mean_std(values: list[float]) -> tuple[float, float]:
    import statistics

    if not values:
        return float("nan"), float("nan")
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def by_variant(rows: list[dict], split: str, metric: str) -> dict[str, dict[str, tuple[float, float, int]]]:
    """{name: {attribute or mean: (mean over seeds, std, seeds)}}."""
    out: dict[str, dict[str, tuple[float, float, int]]] = {}
    for name in dict.fromkeys(r["name"] for r in rows):
        cells = {}
        for attr in ("mean", *ATTRIBUTES):
            vals = [r["value"] for r in pick(rows, name=name, split=split, metric=metric, attribute=attr)]
            if vals:
                m, s = mean_std(vals)
                cells[attr] = (m, s, len(vals))
        if cells:
            out[name] = cells
    return out
