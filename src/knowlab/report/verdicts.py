"""Plain sentences saying whether a study reproduced each of the paper's effects.

A small model on a CPU shows some effects and not others; the report must say which, next to the
paper's number, rather than leave a reader to infer it from a table. Each function takes the
study's numbers (percentages, or probe result dicts) and returns one markdown line. The
thresholds are stated in the sentences so a reader can check them.
"""

from __future__ import annotations

from knowlab.data.schema import ATTRIBUTES

# The six P/Q-probe tasks with one class per value (birth date: its month, as in the paper).
MAIN_TASKS = ("birth_month", *(f"{a}_whole" for a in ATTRIBUTES[1:]))
DIAGONAL_GAP = 20.0  # points between "just before the attribute" and earlier positions
HIGH = 50.0  # "high" accuracy, in %
FOLLOWS_GAP = 25.0  # Q-probe within this many points of QA accuracy


def _task_of(attribute: str) -> str:
    return "birth_month" if attribute == "birth_date" else f"{attribute}_whole"


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


def p_probe_summary(result: dict) -> dict[str, float | None]:
    """Position-1 mean and baseline over the main tasks, and, for unpermuted bios (each position
    always before the same attribute), the mean just before each attribute vs at earlier ones."""
    tasks = [t for t in MAIN_TASKS if t in result["accuracy"]]
    acc, base = result["accuracy"], result["baseline"]
    out: dict[str, float | None] = {
        "first": 100 * _mean([acc[t][0] for t in tasks]),
        "baseline": 100 * _mean([base[t] for t in tasks]),
        "before": None, "earlier": None}
    order = result.get("position_attributes") or []
    if order and all(p["share"] == 1.0 for p in order):
        before, earlier = [], []
        for k, pos in enumerate(order[1:], start=1):
            task = _task_of(pos["attribute"])
            if task in acc:
                before.append(acc[task][k])
                earlier.append(_mean(acc[task][:k]))
        if before:
            out["before"], out["earlier"] = 100 * _mean(before), 100 * _mean(earlier)
    return out


def p_probe_verdict(name: str, result: dict) -> str:
    s = p_probe_summary(result)
    line = (f"`{name}`: position 1 reads {s['first']:.1f}% on average over the six one-class-per-value "
            f"tasks (majority baseline {s['baseline']:.1f}%)")
    if s["before"] is not None:
        diagonal = s["before"] - s["earlier"] >= DIAGONAL_GAP
        line += (f"; just before each attribute {s['before']:.1f}% against {s['earlier']:.1f}% at the "
                 f"positions before that: it {'shows' if diagonal else 'does **not** show'} the paper's "
                 f"diagonal (a gap of {DIAGONAL_GAP:.0f} points or more)")
        return line + "."
    high = s["first"] >= HIGH
    line += (f"; {'high' if high else '**not** high'} from the first position "
             f"({HIGH:.0f}% or more; the paper's `multi5+permute` is near 100%).")
    return line


def q_probe_vs_qa(pairs: dict[str, tuple[dict, float | None]]) -> list[str]:
    """`pairs`: model name -> (Q-probe result, the QA P_test mean in % of the same model, or None
    where that model was not finetuned). Result 5 says the Q-probe accuracy tracks QA accuracy:
    same order across models and a similar level; models without QA are listed, not compared."""
    if not pairs:
        return []
    probe = {n: 100 * _mean([r["accuracy"][t] for t in MAIN_TASKS if t in r["accuracy"]]) for n, (r, _) in pairs.items()}
    lines = [f"- `{n}`: Q-probe {probe[n]:.1f}% (mean of the six one-class-per-value tasks), "
             + (f"QA P_test {qa:.1f}%" if qa is not None else "no QA finetune of this model in the study")
             for n, (_, qa) in pairs.items()]
    rows = {n: (probe[n], qa) for n, (_, qa) in pairs.items() if qa is not None}
    if not rows:
        return [*lines, ""]
    by_qa = sorted(rows, key=lambda n: rows[n][1])
    by_q = sorted(rows, key=lambda n: rows[n][0])
    close = all(abs(q - qa) <= FOLLOWS_GAP for q, qa in rows.values())
    if len(rows) > 1 and by_qa == by_q and close:
        verdict = "Q-probing follows QA accuracy here, as in the paper"
    else:
        why = [] if len(rows) < 2 or by_qa == by_q else ["orders the models differently"]
        why += [] if close else [f"is more than {FOLLOWS_GAP:.0f} points from it"]
        verdict = ("Q-probing does **not** follow QA accuracy at this scale (it "
                   + " and ".join(why or ["needs two models to compare"]) + "); the paper finds it does")
    return [*lines, "", verdict + ".", ""]


def effect_verdict(what: str, ours: float, paper: float, reference: float | None = None,
                   paper_reference: float | None = None, margin: float = 10.0) -> str:
    """One line: our number against the paper's, and whether the effect shows. With a
    reference (e.g. the minority trained alone) the effect is the gain over it; without one it
    is reaching half the paper's number."""
    if reference is None:
        shows = ours >= paper / 2
        rule = f"half the paper's {paper:.1f}% or more"
        ours_text = f"{ours:.1f}%"
    else:
        shows = ours - reference >= margin
        rule = f"a gain of {margin:.0f} points or more"
        ours_text = f"{ours:.1f}% against {reference:.1f}%"
    paper_text = f"{paper:.1f}%" + (f" against {paper_reference:.1f}%" if paper_reference is not None else "")
    state = "appears" if shows else "does **not** appear"
    return f"{what}: {ours_text} here, {paper_text} in the paper. The effect {state} at this scale ({rule})."
