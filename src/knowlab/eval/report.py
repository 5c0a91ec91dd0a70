"""Markdown tables shaped like the paper's Figure 3: one row per model or variant, columns
mean, b_date, b_city, univ, major, c_name, c_city; cells are accuracies in percent.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from knowlab.data.schema import ATTRIBUTES, SHORT

COLUMNS: tuple[str, ...] = ("mean", *ATTRIBUTES)
METRIC_TITLES = {
    "exact": "QA exact match",
    "first_token": "QA first-token accuracy",
    "bio_first_token": "BIO memorisation (first-token accuracy)",
}


def _cell(value: float | None, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{100 * value:.{digits}f}"


def figure3_table(rows: Mapping[str, Mapping[str, float]], label: str = "model", digits: int = 1) -> str:
    """A Markdown table from {row name: {attribute or "mean": accuracy in [0, 1]}}."""
    head = [label] + [SHORT.get(c, c) for c in COLUMNS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, values in rows.items():
        lines.append("| " + " | ".join([name] + [_cell(values.get(c), digits) for c in COLUMNS]) + " |")
    return "\n".join(lines)


def result_tables(result: Mapping, name: str = "model", digits: int = 1) -> str:
    """All tables of one `evaluate` result: a Figure 3 table per metric, a row per split."""
    splits = result.get("splits", {})
    parts = []
    for metric, title in METRIC_TITLES.items():
        rows = {f"{name} (P_{split})": m[metric] for split, m in splits.items() if m.get(metric)}
        if rows:
            parts.append(f"**{title}**, %\n\n" + figure3_table(rows, digits=digits))
    beams = result.get("beams", 1)
    decoding = result.get("decoding") or ("greedy" if beams == 1 else f"beam {beams}") + " decoding"
    counts = ", ".join(f"P_{s}: {m['people']:,} people, {m['questions']:,} questions" for s, m in splits.items())
    return f"{decoding}; {counts}\n\n" + "\n\n".join(parts)
