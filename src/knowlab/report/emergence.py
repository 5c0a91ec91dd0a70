"""The emergence report: each result of the paper against the axis that drives it.

One figure per result (our numbers against the axis, the paper's number as a dashed line), a
table, and a plain sentence: the first point where the effect appears, or how far it got at the
largest point and which way it trends. The rule for "appears" is written into the sentence.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from knowlab.report import paper
from knowlab.report.collect import StudyRuns, mean_std

EASY, HARD = ("birth_date", "major"), ("birth_city", "university", "company", "company_city")
RISE = 2.0  # points: a smaller change between the first and last point is "flat"


@dataclass
class Series:
    label: str
    points: dict[float, list[float]] = field(default_factory=dict)  # axis value -> one value per seed (%)
    unit: str = "%"  # " points" for a difference of two accuracies

    def add(self, x: float, value: float) -> None:
        self.points.setdefault(float(x), []).append(value)

    def mean(self, x: float) -> float:
        return mean_std(self.points[x])[0]

    def cell(self, x: float) -> str:
        """The table cell: the mean, with its std and seed count where several seeds ran.

        A one-seed point among points with several says n=1, so it is not read as a mean.
        """
        values = self.points.get(x)
        if not values:
            return "-"
        mean, std = mean_std(values)
        if len(values) > 1:
            return f"{_fmt(mean)} ± {_fmt(std)} (n={len(values)})"
        return f"{_fmt(mean)} (n=1)" if any(len(v) > 1 for v in self.points.values()) else _fmt(mean)

    def xs(self) -> list[float]:
        return sorted(self.points)


def _tagged(runs: StudyRuns, study: str, result: str) -> list[tuple[dict, str, float]]:
    """(run, axis, value) for every emergence point of `result` that a finished run of `study` holds."""
    out = []
    for run in runs.runs(study=study):
        for p in run["tags"].get("emergence", []):
            if p["result"] == result:
                out.append((run, p["axis"], float(p["value"])))
    return out


def _qa(runs: StudyRuns, run: dict, split: str = "test", metric: str = "exact", attr: str = "mean") -> float | None:
    value = runs.read_json(run).get("splits", {}).get(split, {}).get(metric, {}).get(attr)
    return None if value is None else 100 * value


def _fill(runs: StudyRuns, series: Series, points: list[tuple[dict, str, float]], axis: str | None = None,
          split: str = "test", metric: str = "exact", attr: str = "mean") -> Series:
    """Add each point's eval metric (on `axis`, or any) to `series`; unfinished metrics are skipped."""
    for run, ax, x in points:
        if (axis is None or ax == axis) and (v := _qa(runs, run, split, metric, attr)) is not None:
            series.add(x, v)
    return series


def trend(series: Series) -> str:
    xs = series.xs()
    if len(xs) < 2:
        return "one point only"
    first, last = series.mean(xs[0]), series.mean(xs[-1])
    steps = [series.mean(b) - series.mean(a) for a, b in zip(xs, xs[1:])]
    monotone = all(d >= -RISE for d in steps) or all(d <= RISE for d in steps)
    way = "rising" if last - first >= RISE else "falling" if first - last >= RISE else "flat"
    u = series.unit
    return f"{way} from {first:.1f}{u} to {last:.1f}{u}" + ("" if monotone else ", not monotonically")


def verdict(what: str, axis: str, series: Series, shows: Callable[[float], bool], rule: str, paper_text: str) -> str:
    xs = series.xs()
    if not xs:
        return f"{what}: no finished points yet."
    hit = next((x for x in xs if shows(x)), None)
    if hit is not None:
        return (f"{what}: the effect **appears** from {axis} = {hit:g} ({rule}); {paper_text}. "
                f"Across the sweep: {trend(series)}.")
    return (f"{what}: the effect does **not** appear up to {axis} = {xs[-1]:g} ({rule}); at that point "
            f"{series.mean(xs[-1]):.1f}{series.unit}, {paper_text}; the trend is {trend(series)}.")


def q_probe_mean(result: dict, key: str = "accuracy") -> float:
    """Mean over all its tasks, in %, of a q_probe.json's `accuracy`, `baseline` or
    `train_accuracy` (the Q-probe columns of the emergence report and of the GPU check)."""
    values = result[key]
    return 100 * sum(values.values()) / len(values)


def last_layer_mean(readout: dict, place: str = "name") -> tuple[float, float]:
    """(mean held-out accuracy at the last layer, mean majority baseline), in %, of a readout.json."""
    tasks = readout["tasks"]
    acc = sum(readout["accuracy"][place][t][-1] for t in tasks) / len(tasks)
    return 100 * acc, 100 * sum(readout["baseline"][t] for t in tasks) / len(tasks)


def _fmt(v: float | None) -> str:
    return "-" if v is None or math.isnan(v) else f"{v:.1f}"


class EmergenceSection:
    def __init__(self, runs: StudyRuns, fig: Callable, table: Callable):
        self.runs, self.fig, self.table = runs, fig, table
        self.md: list[str] = []
        self.csv: list[dict] = []

    def _plot(self, name: str, title: str, axis: str, series: list[Series], lines: dict[str, float]) -> str:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(5.2, 3.2), layout="constrained")
        ax = fig.add_subplot()
        for s in series:
            xs = s.xs()
            if xs:
                stds = [mean_std(s.points[x])[1] for x in xs]
                ax.errorbar(xs, [s.mean(x) for x in xs], yerr=stds if any(stds) else None, marker="o",
                            capsize=3, label=s.label)
        for i, (label, y) in enumerate(lines.items()):
            ax.axhline(y, ls="--", lw=1, color=f"C{i + len(series)}", label=label)
        ax.set_xscale("log")
        ax.set_xlabel(axis)
        ax.set_ylabel("accuracy (%)")
        ax.set_ylim(0, 100)
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7)
        return f"![{title}]({self.fig(fig, name)})"

    def _emit(self, result: str, axis: str, series: list[Series]) -> None:
        for s in series:
            for x, values in s.points.items():
                for v in values:
                    self.csv.append({"study": f"emergence-{result}", "name": s.label, "point": f"{axis}={x:g}",
                                     "metric": s.label, "value": v / 100, "split": "test", "attribute": "mean"})
        xs = sorted({x for s in series for x in s.points})
        head = [axis, *[s.label for s in series]]
        rows = [[f"{x:g}", *[s.cell(x) for s in series]] for x in xs]
        self.md += [self.table(head, rows), ""]

    # ---- results ------------------------------------------------------------------------------
    def result1(self) -> None:
        points = _tagged(self.runs, "emergence-mixed", "1")
        if not points:
            return
        self.md += ["### Result 1: mixed training against people and exposures",
                    "Single bios of everyone plus the QAs of P_train in one pretraining; no finetuning. "
                    "Exposures are passes over each person's bio (train/budget.py).", ""]
        for axis in ("people", "exposures"):
            test = _fill(self.runs, Series("QA P_test"), points, axis)
            train = _fill(self.runs, Series("QA P_train"), points, axis, split="train")
            bio = _fill(self.runs, Series("BIO mem"), points, axis, metric="bio_first_token")
            if not test.points:
                continue
            self.md += [self._plot(f"emergence-r1-{axis}.png", f"Result 1: mixed training vs {axis}", axis,
                                   [test, train, bio], {f"paper P_test {paper.MIXED_SINGLE}%": paper.MIXED_SINGLE}), ""]
            self._emit("mixed", axis, [test, train, bio])
            half = paper.MIXED_SINGLE / 2
            self.md += [verdict(f"Mixed training against {axis}", axis, test, lambda x: test.mean(x) >= half,
                                f"P_test at least half the paper's {paper.MIXED_SINGLE}%",
                                f"the paper has {paper.MIXED_SINGLE}% at {paper.PAPER_SCALE}"), ""]

    def result6(self) -> None:
        with_c = _tagged(self.runs, "emergence-celebrity", "6")
        if not with_c:
            return
        celeb = _fill(self.runs, Series("minority with celebrities"), with_c)
        alone = _fill(self.runs, Series("minority alone"), _tagged(self.runs, "emergence-celebrity-alone", "6"))
        bio = _fill(self.runs, Series("minority BIO mem"), _tagged(self.runs, "emergence-celebrity-pretrained", "6"),
                    metric="bio_first_token")
        self.md += ["### Result 6: celebrities against the minority's exposures",
                    "The minority (single+permute1) finetuned on celebrity QAs only, against the minority "
                    "alone finetuned on its own P_train; both tested on the same kind of held-out minority "
                    "people, with the same minority exposures. BIO mem is the minority's, before finetuning.", "",
                    self._plot("emergence-r6.png", "Result 6: celebrity effect vs minority exposures", "exposures",
                               [celeb, alone, bio], {f"paper with celebrities {paper.CELEBRITY['with celebrities']}%":
                                                     paper.CELEBRITY["with celebrities"],
                                                     f"paper alone {paper.CELEBRITY['minority alone']}%":
                                                     paper.CELEBRITY["minority alone"]}), ""]
        self._emit("celebrity", "exposures", [celeb, alone, bio])
        gain = Series("gain", unit=" points")
        for x in celeb.xs():
            if x in alone.points:
                gain.add(x, celeb.mean(x) - alone.mean(x))

        def shows(x: float) -> bool:
            return x in gain.points and gain.mean(x) >= 20 and x in bio.points and bio.mean(x) >= 95

        self.md += [verdict("Celebrity gain (with minus alone, points)", "exposures", gain, shows,
                            "a gain of 20 points or more with the minority memorised to 95% or more",
                            f"the paper has {paper.CELEBRITY['with celebrities']}% against "
                            f"{paper.CELEBRITY['minority alone']}%"), ""]

    def result45(self) -> None:
        qa_points = _tagged(self.runs, "emergence-qa", "4-5")
        probe_points = _tagged(self.runs, "emergence-probe-q", "4-5")
        readout_points = _tagged(self.runs, "emergence-readout", "4-5")
        if not probe_points:
            return
        self.md += ["### Results 4-5: Q-probing against QA accuracy, by width, depth, people and exposures",
                    "The Q-probe reads each attribute from the hidden state at the end of the bare name; "
                    "it should track the model's QA accuracy after finetuning (Figure 7). Probe: mean over "
                    "its tasks on P_test (with its majority baseline), and on the people it was trained on; QA: "
                    "P_test exact match. The control has no trainable part in the model: a logistic "
                    "regression on the frozen last layer at the name's last token (`knowlab probe readout`), "
                    "with its majority baseline.", ""]
        for axis in ("width", "depth", "people", "exposures"):
            qa, probe = _fill(self.runs, Series("QA P_test"), qa_points, axis), Series("Q-probe mean")
            probe_train, probe_base = Series("Q-probe, its training people"), Series("Q-probe baseline")
            readout, base = Series("linear readout"), Series("readout baseline")
            for run, ax, x in probe_points:
                if ax == axis:
                    result = self.runs.read_json(run, "q_probe.json")
                    probe.add(x, q_probe_mean(result))
                    if result.get("baseline"):
                        probe_base.add(x, q_probe_mean(result, "baseline"))
                    if result.get("train_accuracy"):
                        probe_train.add(x, q_probe_mean(result, "train_accuracy"))
            for run, ax, x in readout_points:
                if ax == axis:
                    acc, chance = last_layer_mean(self.runs.read_json(run, "readout.json"))
                    readout.add(x, acc)
                    base.add(x, chance)
            if not probe.points:
                continue
            self.md += [self._plot(f"emergence-r45-{axis}.png", f"Results 4-5: Q-probe and QA vs {axis}", axis,
                                   [qa, probe, readout], {"paper Q-probe ~100%": 100.0}), ""]
            self._emit("probing", axis, [s for s in (qa, probe, probe_base, probe_train, readout, base) if s.points])

            def shows(x: float, qa=qa, probe=probe) -> bool:
                return x in qa.points and qa.mean(x) >= 50 and abs(probe.mean(x) - qa.mean(x)) <= 15

            self.md += [verdict(f"Q-probe tracking QA against {axis}", axis, probe, shows,
                                "QA at least 50% and the probe within 15 points of it",
                                "the paper's Q-probe reads 99-100% where QA is 96%"), ""]
            if readout.points:
                top = readout.xs()[-1]
                self.md += [f"Control against {axis}: the linear readout at the name reads {readout.mean(top):.1f}% "
                            f"at {axis} = {top:g} against a {base.mean(top):.1f}% majority baseline; "
                            f"the trend is {trend(readout)}.", ""]

    def result7(self) -> None:
        points = _tagged(self.runs, "emergence-gbert", "7")
        if not points:
            return
        easy, hard = Series("birth date + major"), Series("other four")
        bio = Series("BIO mem")
        for run, _, x in points:
            vals = {a: _qa(self.runs, run, attr=a) for a in (*EASY, *HARD)}
            if any(v is None for v in vals.values()):
                continue
            easy.add(x, sum(vals[a] for a in EASY) / len(EASY))
            hard.add(x, sum(vals[a] for a in HARD) / len(HARD))
        _fill(self.runs, bio, _tagged(self.runs, "emergence-gbert-bio", "7"), metric="bio_first_token")
        self.md += ["### Result 7: GBERT's per-attribute split against masked-LM exposures",
                    "GBERT BIO-pretrained on the study's gbert_variant bios, then the study's finetune; P_test "
                    "exact match averaged over birth date and major (values the paper finds GBERT extracts) and "
                    "over the other four (multi-token values it does not).", "",
                    self._plot("emergence-r7.png", "Result 7: GBERT vs MLM exposures", "exposures",
                               [easy, hard, bio], {}), ""]
        self._emit("gbert", "exposures", [easy, hard, bio])
        split = Series("split", unit=" points")
        for x in easy.xs():
            split.add(x, easy.mean(x) - hard.mean(x))
        self.md += [verdict("GBERT split (birth date + major minus the other four, points)", "exposures", split,
                            lambda x: split.mean(x) > 5 and easy.mean(x) >= 50,
                            "birth date and major at 50% or more and 5 points above the other four",
                            "the paper reports the pattern, no numbers"), ""]

    def build(self) -> tuple[list[str], list[dict]]:
        for section in (self.result1, self.result6, self.result45, self.result7):
            section()
        if self.md:
            self.md = ["## Emergence: where each result appears as scale grows",
                       "Each sweep varies one axis and keeps the preset's other settings; a point is one "
                       "ordinary run; where several seeds ran, a cell is mean ± std over them (n seeds) and the "
                       "figures' bars are the std. docs/emergence.md explains the axes.",
                       "", *self.md]
        return self.md, self.csv
