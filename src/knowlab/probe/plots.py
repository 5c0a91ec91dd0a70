"""Heatmaps of probing results in the style of the paper's Figures 5 and 7.

- `plot_p_probe(result)`: one model, rows = tasks, columns = the six special positions (text
  order), each cell the held-out accuracy in percent, with the majority baseline set apart on
  the right (Figure 5 / Figure 13).
- `plot_p_probes({name: result})`: several of those side by side (Figure 5 compares variants).
- `plot_q_probe({name: result})`: rows = models (plus a baseline row), columns = tasks
  (Figure 7, right block of the Figure 3 image).

Figures are built with `matplotlib.figure.Figure` (no pyplot, no global state), so they render
headless with the Agg canvas; `savefig` them or pass `path`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from knowlab.data.schema import SHORT
from knowlab.probe.types import TASK_LABELS, TASKS


def _heatmap(ax, values: np.ndarray, rows: list[str], cols: list[str], title: str | None = None,
             rotation: int = 0) -> None:
    """Percentages on a viridis scale 0-100; NaN cells stay blank (used as separators)."""
    pct = np.asarray(values, dtype=float) * 100
    ax.imshow(np.ma.masked_invalid(pct), cmap="viridis", vmin=0, vmax=100, aspect="auto")
    for (i, j), v in np.ndenumerate(pct):
        if np.isfinite(v):
            ax.text(j, i, f"{v:.0f}" if v >= 99.95 else f"{v:.1f}", ha="center", va="center",
                    fontsize=8, color="black" if v > 60 else "white")
    ax.set_xticks(range(len(cols)), cols, rotation=rotation, ha="right" if rotation else "center", fontsize=8)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    if title:
        ax.set_title(title, fontsize=9)


def _p_matrix(result: dict) -> tuple[np.ndarray, list[str], list[str]]:
    tasks = result["tasks"]
    acc = np.array([result["accuracy"][t] for t in tasks], dtype=float)  # (T, P)
    base = np.array([[result["baseline"][t]] for t in tasks], dtype=float)
    gap = np.full((len(tasks), 1), np.nan)
    cols = list(result["positions"])
    for j, pa in enumerate(result.get("position_attributes") or []):
        if pa["share"] == 1.0:  # unpermuted bios: position j always precedes the same attribute
            cols[j] += f"\n({SHORT.get(pa['attribute'], pa['attribute'])})"
    cols += ["", "baseline"]
    return np.hstack([acc, gap, base]), [TASK_LABELS.get(t, t) for t in tasks], cols


def _title(result: dict, name: str | None) -> str:
    name = name or result.get("name") or "model"
    variant = result.get("variant")
    layer = result.get("layer")
    return f"{name}" + (f" ({variant})" if variant else "") + (f", layer {layer}" if layer is not None else "")


def plot_p_probe(result: dict, path: str | Path | None = None, title: str | None = None, ax=None):
    """Figure-5-style heatmap of one P-probing result (the dict `run_p_probe` returns)."""
    from matplotlib.figure import Figure

    values, rows, cols = _p_matrix(result)
    fig = None
    if ax is None:
        fig = Figure(figsize=(1.0 + 0.6 * len(cols), 0.8 + 0.32 * len(rows)))
        ax = fig.add_subplot()
    _heatmap(ax, values, rows, cols, title or f"P-probing: {_title(result, None)}")
    ax.set_xlabel("special position (text order)", fontsize=8)
    return _finish(fig or ax.figure, path)


def plot_p_probes(results: dict[str, dict], path: str | Path | None = None, ncols: int = 3):
    """Several P-probing heatmaps in a grid, one per model, titled by the dict's keys."""
    from matplotlib.figure import Figure

    n = len(results)
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    n_tasks = max(len(r["tasks"]) for r in results.values())
    fig = Figure(figsize=(5.2 * ncols, (0.8 + 0.32 * n_tasks) * nrows + 0.3), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols)).reshape(-1)
    for ax, (name, result) in zip(axes, results.items()):
        plot_p_probe(result, title=name, ax=ax)
    for ax in axes[n:]:
        ax.set_visible(False)
    return _finish(fig, path)


def plot_q_probe(results: dict[str, dict], path: str | Path | None = None, title: str | None = None,
                 baseline: bool = True):
    """Figure-7-style table: rows = models (keys of `results`), columns = tasks.

    The baseline row is the majority-class accuracy of the first result (all results on the
    same dataset split share it)."""
    from matplotlib.figure import Figure

    present = {t for r in results.values() for t in r["tasks"]}
    tasks = [t for t in TASKS if t in present] + sorted(present - set(TASKS))
    rows, values = [], []
    if baseline and results:
        first = next(iter(results.values()))
        rows.append("baseline")
        values.append([first["baseline"].get(t, np.nan) for t in tasks])
    for name, r in results.items():
        rows.append(name)
        values.append([r["accuracy"].get(t, np.nan) for t in tasks])
    cols = [f"Q-{TASK_LABELS.get(t, t)}" for t in tasks]
    fig = Figure(figsize=(1.5 + 0.75 * len(cols), 0.9 + 0.32 * len(rows)), layout="constrained")
    ax = fig.add_subplot()
    _heatmap(ax, np.array(values, dtype=float), rows, cols, title or "Q-probing accuracy (%)", rotation=30)
    return _finish(fig, path)


def _finish(fig, path: str | Path | None):
    if path is not None:
        save(fig, path)
    return fig


def save(fig, path: str | Path) -> Path:
    """Write `fig` as PNG atomically."""
    import io

    from knowlab.io import write_bytes_atomic

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    write_bytes_atomic(path, buf.getvalue())
    return Path(path)
