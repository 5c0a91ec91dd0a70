"""The report section of the manipulation study (Part 3.2): tables next to the paper's numbers,
the chance baselines, a curve over training populations, and one sentence per finding.

Sources of the paper's numbers: shared/paper/NOTES-3.2.md (§3; [V] is Figure 4 read off the
authors' talk, model M, P_train = 2.5k/5k/10k/25k/50k).
"""

from __future__ import annotations

from collections.abc import Callable

from knowlab.data.schema import ATTRIBUTES
from knowlab.data.tasks import TASKS
from knowlab.report.collect import StudyRuns, eval_rows, mean_std

PAPER_SIZES = (2500, 5000, 10000, 25000, 50000)
# task -> {training: accuracies at PAPER_SIZES}; "none" = no-hint training tested without,
# "hint+" = hint training tested with the hint, "hint-" = hint training tested without.
PAPER_CURVES = {
    "month_mod2": {"none": (60.4, 67.3, 75.9, 86.4, 95.3), "hint+": (77.8, 87.3, 94.2, 98.6, 99.5),
                   "hint-": (65.2, 72.7, 80.3, 91.1, 97.5)},
    "month_mod12": {"none": (51.5, 74.2, 91.6, 97.9, 99.4), "hint+": (61.5, 79.0, 92.0, 98.5, 99.5),
                    "hint-": (53.7, 70.1, 86.8, 96.8, 99.4)},
    "month_later": {"none": (53.7, 59.2, 65.4, 75.6, 85.6), "hint+": (65.4, 75.5, 87.7, 96.7, 99.0),
                    "hint-": (59.6, 63.4, 67.0, 75.8, 86.7)},
}
# What the notes give per task: a number (%) or, in words, a pattern read off a figure.
PAPER_RETRIEVAL: dict[str, float | str] = {
    **{t: "above 96.6 (mean)" for t in ATTRIBUTES},
    "birth_day": 82.3,
    **{t: "near 100" for t in ("birth_city+company", "company+birth_city", "university+major",
                               "major+university", "company_city+company", "company+company_city")}}
PAPER_INVERSE: dict[str, float | str] = {t: "about 0" for t in TASKS if TASKS[t].family == "inverse"}
PAPER_PATTERNS = {
    "retrieval": "partial and dual retrieval near perfect on multi5+permute (birth day 82.3%)",
    "classification": "without hints, even/odd month needs 10k training people for 75%; major luckiness "
                      "mod 5/20 stays near chance even with 2.5M samples; the rephrasings (%12, %100) do well",
    "comparison": "without hints, month ranking needs 50k people for 85%; major ranking stays near chance; "
                  "hint training tested with the hint does far better",
    "inverse": "about 0% on P_test for every task, variant and model",
}
ABOVE_CHANCE = 10.0  # points over the majority baseline for an effect to count as "appears"
NEAR_EXTRACTION = 5.0  # points: retrieval "matches" the base model's six-QA extraction within this
# Points by which hint training tested with the hint must beat no-hint training on even/odd month
# for the hint to count as helping: the paper's smallest gap is 17.4 (PAPER_CURVES, 2.5k people).
HINT_GAIN = 15.0


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def _rows(runs: StudyRuns) -> list[dict]:
    """One dict per finished manipulation eval: its tags and its test-split result."""
    out = []
    for run in runs.runs(study="manipulation", kind="eval-tasks"):
        result = runs.read_json(run, "eval_tasks.json")
        test = result["splits"].get("test")
        if test:
            out.append({**run["tags"], "test": test, "beams": result.get("beams", 1)})
    return out


def extraction_by_seed(runs: StudyRuns) -> dict[int, float]:
    """The base model's six-QA P_test exact match per seed, the reference for retrieval."""
    return {r["seed"]: r["value"] for r in eval_rows(runs, "manipulation-extraction")
            if (r["split"], r["metric"], r["attribute"]) == ("test", "exact", "mean")}


def full_retrieval_by_seed(rows: list[dict]) -> dict[int, float]:
    """Mean P_test exact match over the six full-attribute retrieval tasks, per seed (base M rows)."""
    out = {}
    for r in rows:
        if r["family"] == "retrieval" and r.get("base", "M") == "M":
            vals = [_get(r["test"], "answer", "exact", t) for t in ATTRIBUTES]
            vals = [v for v in vals if v is not None]
            if vals:
                out[r["seed"]] = sum(vals) / len(vals)
    return out


def _ordered(tasks) -> list[str]:
    """Tasks in knowlab.data.tasks order (eval JSONs store them sorted)."""
    rank = {t: k for k, t in enumerate(TASKS)}
    return sorted(dict.fromkeys(tasks), key=lambda t: (rank.get(t, len(rank)), t))


def _get(test: dict, mode: str, key: str, task: str) -> float | None:
    return test.get(mode, {}).get(key, {}).get(task)


def _csv(rows: list[dict]) -> list[dict]:
    out = []
    for r in rows:
        point = f"{r['family']}/n{r['train_people']}/{r['hints']}"
        for mode, key, metric in (("answer", "exact", "answer_only"), ("hint", "exact", "with_hint"),
                                  ("hint", "hint", "hint_accuracy")):
            for task, v in r["test"].get(mode, {}).get(key, {}).items():
                out.append({"study": "manipulation", "name": r.get("name"), "variant": r.get("variant"),
                            "seed": r.get("seed"), "point": point, "split": "test", "metric": metric,
                            "attribute": task, "value": v})
        for task, v in r["test"]["baseline"].items():
            out.append({"study": "manipulation", "name": r.get("name"), "variant": r.get("variant"),
                        "seed": r.get("seed"), "point": point, "split": "test", "metric": "baseline",
                        "attribute": task, "value": v})
    return out


def _mean(xs: list[float]) -> float | None:
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


def _flat_family(rows: list[dict], family: str, head: str, paper: dict[str, float | str]) -> tuple[list[str], dict]:
    """A table of a family trained once per base model (retrieval, inverse search): task, ours
    per base (mean over seeds), the baseline, the paper's number. Returns the first base's numbers."""
    sub = [r for r in rows if r["family"] == family]
    if not sub:
        return [], {}
    bases = list(dict.fromkeys((r.get("variant"), r.get("base", "M")) for r in sub))
    tasks = _ordered(t for r in sub for t in r["test"]["baseline"])
    acc = {b: {t: _mean([_get(r["test"], "answer", "exact", t) for r in sub if (r.get("variant"), r.get("base", "M")) == b])
               for t in tasks} for b in bases}
    base = {t: _mean([r["test"]["baseline"].get(t) for r in sub]) for t in tasks}
    label = [f"`{v}`" + (" (M')" if m == "M'" else "") for v, m in bases]
    lines = [head, "", "| task | " + " | ".join(label) + " | majority baseline | paper |",
             "|---|" + "---|" * (len(bases) + 2)]
    for t in tasks:
        ref = paper.get(t)
        lines.append(f"| {t} | " + " | ".join(_pct(acc[b][t]) for b in bases)
                     + f" | {_pct(base[t])} | {'-' if ref is None else ref if isinstance(ref, str) else f'{ref:.1f}'} |")
    if len(bases) > 1:
        lines += ["", "Columns after the first: other base models (the reversed bios hold the name back, "
                  "so inverse search becomes a forward lookup on them)."]
    return lines + [""], {"acc": acc[bases[0]], "base": base, "all": acc}


def _full_retrieval_finding(runs: StudyRuns, rows: list[dict]) -> list[str]:
    """Full-attribute retrieval against the same base model's six-QA extraction, over the seeds
    that have both (mean ± std of each and of their per-seed gap)."""
    extraction, full = extraction_by_seed(runs), full_retrieval_by_seed(rows)
    seeds = sorted(set(extraction) & set(full))
    if not seeds:
        return []
    gaps = [100 * (full[s] - extraction[s]) for s in seeds]
    gap, gap_std = mean_std(gaps)
    near = "within" if abs(gap) <= NEAR_EXTRACTION else "**not** within"

    def spread(xs: list[float]) -> str:
        m, sd = mean_std(xs)
        return f"{m:.1f}" + (f" ± {sd:.1f}" if len(xs) > 1 else "")

    text = (f"Full-attribute retrieval (the six extraction questions, finetuned with the other retrieval "
            f"tasks) is {near} {NEAR_EXTRACTION:.0f} points of the same base model's six-QA extraction "
            f"(the augmentation study's finetune, P_test exact match "
            f"{spread([100 * extraction[s] for s in seeds])}%): {spread([100 * full[s] for s in seeds])}%, "
            f"{gap:+.1f} points")
    if len(seeds) > 1:
        text += (f" (mean over seeds {', '.join(map(str, seeds))}; per seed "
                 + ", ".join(f"{g:+.1f}" for g in gaps) + f"; std {gap_std:.1f})")
    return [text + "."]


def section(runs: StudyRuns, fig: Callable | None = None) -> tuple[list[str], list[dict]]:
    """(markdown lines, results.csv rows) of the manipulation study; empty when it has not run."""
    rows = _rows(runs)
    if not rows:
        return [], []
    beams = {r["beams"] for r in rows}
    decoding = "greedy decoding" if beams == {1} else f"beam search ({'/'.join(map(str, sorted(beams)))} beams)"
    start = ("The BIO-pretrained" if rows[0].get("base", "M") == "M"
             else "The six-QA extraction finetune (the paper's M') of the BIO-pretrained")
    md = ["## Part 3.2: knowledge manipulation",
          f"{start} `{rows[0].get('variant')}` model, finetuned on each task family (P_train) "
          f"and scored on P_test by {decoding} and exact match (%). *Answer only*: the prompt ends "
          "with `Answer:`; *with hint*: it ends with `Hint:`, and the model writes the values it needs, "
          "then the answer (the paper's chain of thought); *hint acc*: the written hint is exactly right. "
          "Baseline: the most common answer's share among the test rows.", ""]
    findings: list[str] = []

    lines, ret = _flat_family(rows, "retrieval", "### Retrieval: full attribute, partial and dual (P_train/P_test 50/50)",
                              PAPER_RETRIEVAL)
    md += lines
    if ret:
        # The partial and dual tasks only: the six full-attribute ones have their own finding below.
        parts = [t for t in ret["acc"] if t not in ATTRIBUTES] or list(ret["acc"])
        mean = _mean([ret["acc"][t] for t in parts])
        base = _mean([ret["base"][t] for t in parts])
        shows = "appears" if 100 * (mean - base) >= ABOVE_CHANCE else "does **not** appear"
        findings.append(f"Retrieval of part of a value or two values at once {shows} at this scale: "
                        f"{100 * mean:.1f}% on average against a {100 * base:.1f}% baseline "
                        f"(paper: {PAPER_PATTERNS['retrieval']}).")
        findings += _full_retrieval_finding(runs, rows)

    curve = [r for r in rows if r["family"] in ("classification", "comparison")]
    if curve:
        md += ["### Classification and comparison: growing training populations, fixed P_test", "",
               "| task | training people | no-hint training | hint training, with hint | hint acc "
               "| hint training, without | majority baseline |", "|---|---|---|---|---|---|---|"]
        series: dict[str, dict[str, dict[int, float]]] = {}
        for task in _ordered(t for r in curve for t in r["test"]["baseline"]):
            for n in sorted({r["train_people"] for r in curve if task in r["test"]["baseline"]}):
                at = [r for r in curve if r["train_people"] == n and task in r["test"]["baseline"]]
                none = [r for r in at if r["hints"] == "none"]
                mixed = [r for r in at if r["hints"] == "mixed"]
                cells = {
                    "none": _mean([_get(r["test"], "answer", "exact", task) for r in none]),
                    "hint+": _mean([_get(r["test"], "hint", "exact", task) for r in mixed]),
                    "hint acc": _mean([_get(r["test"], "hint", "hint", task) for r in mixed]),
                    "hint-": _mean([_get(r["test"], "answer", "exact", task) for r in mixed]),
                    "base": _mean([r["test"]["baseline"][task] for r in at]),
                }
                for k, v in cells.items():
                    if v is not None:
                        series.setdefault(task, {}).setdefault(k, {})[n] = v
                md.append(f"| {task} | {n:,} | {_pct(cells['none'])} | {_pct(cells['hint+'])} | "
                          f"{_pct(cells['hint acc'])} | {_pct(cells['hint-'])} | {_pct(cells['base'])} |")
        md += ["", "Paper, model M (NOTES-3.2 §3.2 [V]); training people "
               + "/".join(f"{n // 1000 if n % 1000 == 0 else n / 1000}k" for n in PAPER_SIZES) + ":", "",
               "| task | no-hint training | hint training, with hint | hint training, without |", "|---|---|---|---|"]
        for task, ref in PAPER_CURVES.items():
            md.append(f"| {task} | " + " | ".join("/".join(f"{v:.1f}" for v in ref[k]) for k in ("none", "hint+", "hint-"))
                      + " |")
        md.append("")
        if fig is not None:
            md.append(_curve_figure(series, fig))
        findings += _curve_findings(series)

    lines, inv = _flat_family(rows, "inverse", "### Inverse search (P_train/P_test 50/50)", PAPER_INVERSE)
    md += lines
    if inv:
        mean = _mean(list(inv["acc"].values()))
        fails = 100 * mean < 5.0
        findings.append(f"The paper's inverse-search failure {'appears' if fails else 'does **not** appear'} "
                        f"at this scale: {100 * mean:.1f}% on average over the ten tasks (a failure is under 5%; "
                        f"paper: {PAPER_PATTERNS['inverse']}).")
        for (variant, _), cells in list(inv["all"].items())[1:]:
            other = _mean(list(cells.values()))
            if other is not None and "reverse" in str(variant):
                works = 100 * (other - mean) >= ABOVE_CHANCE
                findings.append(f"On `{variant}` bios inverse search {'improves' if works else 'does **not** improve'}: "
                                f"{100 * other:.1f}% on average (paper: only the reversed bios help, being forward "
                                f"lookups).")
    md += ["### Findings", "", *[f"- {f}" for f in findings], ""]
    return md, _csv(rows)


def _curve_findings(series: dict[str, dict[str, dict[int, float]]]) -> list[str]:
    out = []

    def last(task: str, key: str) -> tuple[int, float] | None:
        points = series.get(task, {}).get(key)
        if not points:
            return None
        n = max(points)
        return n, points[n]

    for task, what, paper in (
            ("month_mod2", "Even/odd birth month without a hint", "75% needs 10k training people"),
            ("month_later", "Month ranking without a hint", "85% needs 50k training people"),
            ("luck_later", "Major ranking without a hint", "near chance even with 2.5M samples")):
        got, base = last(task, "none"), last(task, "base")
        if got and base:
            shows = 100 * (got[1] - base[1]) >= ABOVE_CHANCE
            out.append(f"{what} {'rises' if shows else 'does **not** rise'} {ABOVE_CHANCE:.0f} points above chance "
                       f"with {got[0]:,} training people: {100 * got[1]:.1f}% against a {100 * base[1]:.1f}% "
                       f"baseline (paper: {paper}).")
    with_hint, none = last("month_mod2", "hint+"), last("month_mod2", "none")
    if with_hint and none:
        helps = 100 * (with_hint[1] - none[1]) >= HINT_GAIN
        paper = PAPER_CURVES["month_mod2"]
        out.append(f"The hint {'helps' if helps else 'does **not** help'} even/odd month by {HINT_GAIN:.0f} points "
                   f"or more at {with_hint[0]:,} training people: {100 * with_hint[1]:.1f}% trained and tested "
                   f"with it against {100 * none[1]:.1f}% trained without it (paper: {paper['hint+'][0]} against "
                   f"{paper['none'][0]} at {PAPER_SIZES[0] / 1000:g}k people, {paper['hint+'][-1]} against "
                   f"{paper['none'][-1]} at {PAPER_SIZES[-1] // 1000}k).")
    for task in ("month_later", "month_diff", "luck_later", "luck_diff"):
        with_hint, none = last(task, "hint+"), last(task, "none")
        if with_hint and none:
            helps = 100 * (with_hint[1] - none[1]) >= ABOVE_CHANCE
            out.append(f"The hint (chain of thought) {'helps' if helps else 'does **not** help'} `{task}` at "
                       f"{with_hint[0]:,} training people: {100 * with_hint[1]:.1f}% with it against "
                       f"{100 * none[1]:.1f}% after no-hint training (paper: it helps comparison a lot).")
            break
    return out


def _curve_figure(series: dict[str, dict[str, dict[int, float]]], fig: Callable) -> str:
    from matplotlib.figure import Figure

    tasks = list(series)
    cols = min(4, len(tasks))
    rows = (len(tasks) + cols - 1) // cols
    figure = Figure(figsize=(3.2 * cols, 2.6 * rows), layout="constrained")
    labels = {"none": "no-hint training", "hint+": "hint training, with hint", "hint-": "hint training, without",
              "base": "baseline"}
    for k, task in enumerate(tasks):
        ax = figure.add_subplot(rows, cols, k + 1)
        for key, label in labels.items():
            points = series[task].get(key)
            if points:
                xs = sorted(points)
                ax.plot(xs, [100 * points[x] for x in xs], marker=".", label=label,
                        linestyle=":" if key == "base" else "-")
        ax.set_title(task, fontsize=9)
        ax.set_ylim(0, 100)
        ax.set_xlabel("training people", fontsize=8)
        if k == 0:
            ax.set_ylabel("P_test accuracy (%)", fontsize=8)
            ax.legend(fontsize=6)
    return f"![manipulation accuracy against training people]({fig(figure, 'manipulation.png')})\n"
