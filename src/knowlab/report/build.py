"""The study report: report.md, a self-contained report.html, results.csv and figures/.

Every table puts knowlab's number next to the paper's; where an effect does not appear at the
study's scale the report says so next to the paper's number instead of hiding it.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from knowlab.data.schema import ATTRIBUTES, SHORT
from knowlab.io import write_bytes_atomic, write_text_atomic
from knowlab.report import paper
from knowlab.report.collect import StudyRuns, best_of_grid, by_variant, eval_rows, pick
from knowlab.report.html import markdown_to_html
from knowlab.report.verdicts import effect_verdict, p_probe_verdict, q_probe_vs_qa

COLS = ("mean", *ATTRIBUTES)


def _pct(cell) -> str:
    if cell is None:
        return "-"
    if isinstance(cell, tuple):
        m, s, n = cell
        if math.isnan(m):
            return "-"
        return f"{100 * m:.1f}" + (f" ± {100 * s:.1f}" if n > 1 else "")
    return f"{cell:.1f}" if isinstance(cell, (int, float)) else str(cell)


def _table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _grid_note(rows: list[dict]) -> str:
    """Which finetune setting won, per method, for the report's text."""
    kept = {(r["base"], r["method"]): r["finetune"] for r in best_of_grid(rows) if r.get("finetune")}
    wins: dict[str, dict[str, int]] = {}
    for (_, method), label in kept.items():
        wins.setdefault(method, {}).setdefault(label, 0)
        wins[method][label] += 1
    tried = sorted({r["finetune"] for r in rows if r.get("finetune")})
    said = "; ".join(f"{method}: " + ", ".join(f"`{label}` for {n} model(s)" for label, n in counts.items())
                     for method, counts in wins.items())
    return (f"Each model was finetuned with every setting of the study's finetune grid ({', '.join(tried)}); "
            f"as in the paper ([P] App. D), each row keeps the best setting of its method, chosen by P_test "
            f"mean exact match, and names it. Winners: {said}.")


def _first_per_base(rows: list[dict]) -> dict[str, dict]:
    """{base name: cells} of the first (for a grid, the first method's best) finetune of each model."""
    out: dict[str, dict] = {}
    for r in rows:
        out.setdefault(r["base"], r["name"])
    cells = by_variant(rows, "test", "exact")
    return {b: cells[n] for b, n in out.items() if n in cells}


def _bios_of(variants: set) -> str:
    return ", ".join(f"`{v}`" for v in sorted(v for v in variants if v)) or "the study's gbert_variant"


def _mean_of(cells: dict | None, key: str = "mean") -> float | None:
    if not cells or key not in cells:
        return None
    m = cells[key][0]
    return None if math.isnan(m) else 100 * m


def history_line(h: dict) -> str:
    """One earlier command of a study folder, for the report's appendix."""
    end = f"finished {h['finished']}" if h.get("finished") else "stopped before it finished"
    return f"- `{h.get('command', '')}` (code {h.get('code_version', '?')}, seeds {h.get('seeds', '?')}, {end})"


class Report:
    def __init__(self, root: Path):
        self.runs = StudyRuns.load(root)
        self.root = Path(root)
        self.figs = self.root / "figures"
        self.md: list[str] = []
        self.csv_rows: list[dict] = []

    def fig(self, fig, name: str) -> str:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
        write_bytes_atomic(self.figs / name, buf.getvalue())
        return f"figures/{name}"

    # ---- sections -------------------------------------------------------------------------
    def augmentation(self) -> None:
        raw = eval_rows(self.runs, "augmentation")
        if not raw:
            return
        self.csv_rows += raw
        rows = best_of_grid(raw)
        base = {r["name"]: r["base"] for r in rows}
        bio_rows = eval_rows(self.runs, "augmentation-pretrained")
        self.csv_rows += bio_rows
        qa = by_variant(rows, "test", "exact")
        bio = by_variant(bio_rows, "test", "bio_first_token")
        head = ["variant", "source", "BIO mem", *[SHORT.get(c, c) for c in COLS]]
        table = []
        shown: set[str] = set()
        for name, cells in qa.items():
            variant = base.get(name, name)
            table.append([f"`{name}`", "knowlab", _pct(bio.get(variant, {}).get("mean")), *[_pct(cells.get(c)) for c in COLS]])
            ref = paper.figure3_row(variant)
            if ref and variant not in shown:
                table.append(["", "paper", ">99", *[_pct(ref[c]) for c in COLS]])
                shown.add(variant)
        self.md += ["## Results 2-3: knowledge augmentation (Figure 3)",
                    "Pretrain on bios, finetune on the QAs of P_train, score whole-answer exact match on "
                    "P_test (%). BIO mem = first-token accuracy on attribute values inside the bios of P_test "
                    "people, measured on the pretrained model before finetuning. Mean ± std over seeds "
                    "where several ran.", ""]
        if any(r["finetune"] for r in raw):
            self.md += [_grid_note(raw), ""]
        self.md += [_table(head, table), ""]
        self.md += [f"Paper scale: {paper.PAPER_SCALE}.", ""]
        self.md.append(self._bar_chart(qa, base))

    def _bar_chart(self, qa: dict, base: dict[str, str]) -> str:
        from matplotlib.figure import Figure

        names = list(qa)
        fig = Figure(figsize=(1.6 + 1.4 * len(names), 3.2), layout="constrained")
        ax = fig.add_subplot()
        ours = [_mean_of(qa[n]) or 0 for n in names]
        theirs = [(paper.figure3_row(base.get(n, n)) or {}).get("mean") or 0 for n in names]
        x = range(len(names))
        ax.bar([i - 0.2 for i in x], ours, width=0.4, label="knowlab")
        ax.bar([i + 0.2 for i in x], theirs, width=0.4, label="paper", alpha=0.6)
        ax.set_xticks(list(x), names, rotation=20, ha="right", fontsize=8)
        ax.set_ylabel("QA P_test exact match (%)")
        ax.set_ylim(0, 100)
        ax.legend(fontsize=8)
        return f"![QA test accuracy by variant]({self.fig(fig, 'augmentation.png')})\n"

    def mixed(self) -> None:
        rows = eval_rows(self.runs, "mixed")
        if not rows:
            return
        self.csv_rows += rows
        qa = by_variant(rows, "test", "exact")
        train = by_variant(rows, "train", "exact")
        bio = by_variant(rows, "test", "bio_first_token")
        table = [[f"`{n}`", _pct(bio.get(n, {}).get("mean")), _pct(train.get(n, {}).get("mean")),
                  *[_pct(c.get(k)) for k in COLS]] for n, c in qa.items()]
        ours = max((_mean_of(c) or 0) for c in qa.values())
        self.md += ["## Result 1: mixed training (Figure 1)",
                    "Bios of everyone plus QAs of P_train in one pretraining (each window all bios or all QA), "
                    "no finetuning; QA exact match (%).", "",
                    _table(["run", "BIO mem", "QA P_train", *[f"P_test {SHORT.get(c, c)}" for c in COLS]], table), "",
                    effect_verdict("Mixed training, best P_test mean", ours, paper.MIXED_SINGLE)
                    + f" Paper scale: {paper.PAPER_SCALE}.", ""]
        for run in self.runs.runs(kind="pretrain"):
            if "mixed" in run["name"] or "scaling" in run["name"]:
                curve = self._curves(run)
                if curve:
                    self.md.append(curve)

    def _curves(self, run: dict) -> str | None:
        from matplotlib.figure import Figure

        points = [m for m in self.runs.metrics(run) if any(k.startswith(("eval/", "qa_", "bio_")) for k in m)]
        if not points:
            return None
        keys = sorted({k for m in points for k in m if k.startswith(("eval/", "qa_", "bio_"))})
        fig = Figure(figsize=(6, 3.2), layout="constrained")
        ax = fig.add_subplot()
        for key in keys:
            xs = [m["step"] for m in points if key in m]
            ys = [100 * m[key] for m in points if key in m]
            ax.plot(xs, ys, marker=".", label=key.replace("eval/", ""))
        ax.set_xlabel("pretraining step")
        ax.set_ylabel("accuracy (%)")
        ax.set_ylim(0, 100)
        ax.legend(fontsize=7)
        ax.set_title(run["name"], fontsize=9)
        safe = run["name"].replace("+", "_")
        return f"![learning curves of {run['name']}]({self.fig(fig, f'curves-{safe}.png')})\n"

    def probing(self) -> None:
        from knowlab.probe.plots import plot_p_probes, plot_q_probe

        p_runs = self.runs.runs(study="probing-p")
        q_runs = self.runs.runs(study="probing-q")
        if not p_runs and not q_runs:
            return
        self.md += ["## Results 4-5: where knowledge is stored (P- and Q-probing)"]
        p_results = {r["name"]: self.runs.read_json(r, "p_probe.json") for r in p_runs}
        if p_results:
            self.md += ["P-probing: a linear probe on the frozen model's last layer at the six special "
                        "positions of a bio (the token before each attribute, in text order) predicts each "
                        "attribute. Held-out people, accuracy (%); `baseline` is the majority class.", "",
                        f"![P-probing]({self.fig(plot_p_probes(p_results), 'p_probe.png')})", ""]
            head = ["model", "task", *[f"pos {i + 1}" for i in range(6)], "baseline"]
            table = []
            for name, res in p_results.items():
                for task in res["tasks"]:
                    table.append([f"`{name}`", task, *[f"{100 * v:.1f}" for v in res["accuracy"][task]],
                                  f"{100 * res['baseline'][task]:.1f}"])
                    for pos, v in enumerate(res["accuracy"][task]):
                        self.csv_rows.append({"study": "probing-p", "name": name, "metric": f"p_probe_pos{pos + 1}",
                                              "attribute": task, "value": v, "split": "test"})
            self.md += [f"- {p_probe_verdict(name, res)}" for name, res in p_results.items()]
            self.md += ["", "<details><summary>P-probing numbers</summary>", "", _table(head, table), "",
                        "</details>", ""]
        q_results = {r["name"]: self.runs.read_json(r, "q_probe.json") for r in q_runs}
        if q_results:
            self.md += ["Q-probing: the same kind of probe reads the hidden state at the end of the bare "
                        "name `<EOS> full name <|name_end|>`. Paper's Figure 7 numbers (first-token tasks) "
                        "alongside.", "",
                        f"![Q-probing]({self.fig(plot_q_probe(q_results), 'q_probe.png')})", ""]
            tasks = next(iter(q_results.values()))["tasks"]
            table = []
            for name, res in q_results.items():
                table.append([f"`{name}`", "knowlab", *[f"{100 * res['accuracy'][t]:.1f}" for t in tasks]])
                for t in tasks:
                    self.csv_rows.append({"study": "probing-q", "name": name, "metric": "q_probe",
                                          "attribute": t, "value": res["accuracy"][t], "split": "test"})
                ref = paper.FIGURE7_Q.get(name.rsplit("-s", 1)[0])
                if ref:
                    first = [t for t in tasks if t.endswith(("first", "month"))]
                    table.append(["", "paper (first token)", *[
                        f"{ref[first.index(t)]:.1f}" if t in first and first.index(t) < len(ref) else "" for t in tasks]])
            self.md += [_table(["model", "source", *tasks], table), ""]
            # A probed model "<variant>-s<seed>" is compared with the QA of its own finetune: the
            # augmentation study's run of the same variant and seed (a mean over seeds would pair
            # one model's probe with other models' QA).
            qa_rows = best_of_grid(eval_rows(self.runs, "augmentation"))
            pairs = {}
            for name, res in q_results.items():
                base, sep, seed = name.rpartition("-s")
                rows = [r for r in qa_rows if str(r["seed"]) == seed] if sep else qa_rows
                pairs[name] = (res, _mean_of(_first_per_base(rows).get(base if sep else name)))
            self.md += q_probe_vs_qa(pairs)

    def celebrity(self) -> None:
        raw = eval_rows(self.runs, "celebrity") + eval_rows(self.runs, "celebrity-alone")
        if not raw:
            return
        self.csv_rows += raw
        rows = best_of_grid(raw)
        table = []
        for study, label in (("celebrity-alone", "minority alone"), ("celebrity", "with celebrities")):
            qa = by_variant(pick(rows, study=study), "test", "exact")
            for name, cells in qa.items():
                table.append([label, f"`{name}`", *[_pct(cells.get(c)) for c in COLS], _pct(paper.CELEBRITY[label])])
        self.md += ["## Result 6: celebrities help the minority (Figure 8)",
                    "Minority bios as `single+permute1`; celebrities as `multi5+permute` with distinct names. "
                    "With celebrities, QA finetuning uses the celebrities only and the minority is tested; "
                    "alone, the minority's P_train QAs finetune and P_test is tested. QA exact match (%).", "",
                    _table(["setting", "data", *[SHORT.get(c, c) for c in COLS], "paper mean"], table), ""]
        means = {study: [(_mean_of(c) or 0.0) for c in by_variant(pick(rows, study=study), "test", "exact").values()]
                 for study in ("celebrity", "celebrity-alone")}
        bio_rows = eval_rows(self.runs, "celebrity-pretrained")
        if bio_rows:
            self.csv_rows += bio_rows
            bio = [_pct(c.get("mean")) for c in by_variant(bio_rows, "test", "bio_first_token").values()]
            self.md += [f"The minority's BIO memorisation before finetuning (first-token accuracy on its bios, "
                        f"celebrity model): {', '.join(bio)}%. The effect means little below about 95%.", ""]
        if means["celebrity"] and means["celebrity-alone"]:
            self.md += [effect_verdict("Minority QA accuracy with celebrities vs alone", max(means["celebrity"]),
                                       paper.CELEBRITY["with celebrities"], max(means["celebrity-alone"]),
                                       paper.CELEBRITY["minority alone"]), ""]

    def scaling(self) -> None:
        rows = eval_rows(self.runs, "mixed-scaling")
        if not rows:
            return
        self.csv_rows += rows
        table = []
        for point in dict.fromkeys(r["point"] for r in rows):
            sub = pick(rows, point=point)
            qa = by_variant(sub, "test", "exact")
            train = by_variant(sub, "train", "exact")
            for name, cells in qa.items():
                table.append([point, _pct(train.get(name, {}).get("mean")), *[_pct(cells.get(c)) for c in COLS]])
        self.md += ["## Mixed training at scale: what does it take?",
                    f"Mixed training varied over people, QA ratio, model size and budget. The paper reports "
                    f"{paper.MIXED_SINGLE}% at {paper.PAPER_SCALE}.", "",
                    _table(["point", "QA P_train", *[f"P_test {SHORT.get(c, c)}" for c in COLS]], table), "",
                    effect_verdict("Mixed training, best point's P_test mean",
                                   max(_mean_of(c) or 0.0 for c in by_variant(rows, "test", "exact").values()),
                                   paper.MIXED_SINGLE), ""]

    def gbert(self) -> None:
        rows = eval_rows(self.runs, "gbert-mixed") + eval_rows(self.runs, "gbert-finetune")
        if not rows:
            return
        self.csv_rows += rows  # GPT's rows are written by the mixed and augmentation sections
        tuned = pick(rows, study="gbert-finetune")
        variants = {r["variant"] for r in tuned}
        gpt_tuned = best_of_grid([r for r in eval_rows(self.runs, "augmentation") if r["variant"] in variants])
        gbert_mixed = by_variant(pick(rows, study="gbert-mixed"), "test", "exact")
        groups = [("GBERT", "mixed training", gbert_mixed),
                  ("GPT", "mixed training", by_variant(eval_rows(self.runs, "mixed"), "test", "exact")),
                  ("GBERT", "BIO + finetune", by_variant(tuned, "test", "exact")),
                  ("GPT", "BIO + finetune", by_variant(gpt_tuned, "test", "exact"))]
        table = [[model, how, f"`{name}`", *[_pct(cells.get(c)) for c in COLS]]
                 for model, how, qa in groups for name, cells in qa.items()]
        self.md += ["## Result 7: the encoder-only GBERT (Figure 9)",
                    "GBERT is the GPT stack with bidirectional attention, trained by whole-word masked "
                    "language modelling; a question is answered by filling one mask per answer token, "
                    "all of which must be right. Mixed training uses single bios; finetuning starts from a "
                    f"model BIO-pretrained on {_bios_of(variants)} bios (the run names them), with the study's "
                    "own finetune (as GPT's row) and each LoRA variant of App. H (q/v rank, then a rank-128 or "
                    "the full embedding). QA exact match on P_test (%).", "",
                    _table(["model", "training", "run", *[SHORT.get(c, c) for c in COLS]], table), ""]
        if len(gbert_mixed) > 1:
            top = max(gbert_mixed, key=lambda n: _mean_of(gbert_mixed[n]) or 0)
            self.md += [f"GBERT's mixed training ran at {len(gbert_mixed)} QA ratios; App. H reports the better "
                        f"of QA_r 0.2 and 0.8. Best here: `{top}` ({_pct(gbert_mixed[top].get('mean'))}% on P_test).", ""]
        easy, hard = ("birth_date", "major"), ("birth_city", "university", "company", "company_city")
        best = [c for model, _, qa in groups if model == "GBERT" for c in qa.values()]
        if best:
            top = max(best, key=lambda c: _mean_of(c) or 0)
            e = sum(_mean_of(top, a) or 0 for a in easy) / len(easy)
            h = sum(_mean_of(top, a) or 0 for a in hard) / len(hard)
            shows = "shows" if e > h + 5 else "does **not** show"
            self.md += [f"Paper (numbers not found, pattern only): GBERT extracts birth date and major, "
                        f"values of one word or of independent words, but not the multi-token birth city, "
                        f"university, company and company city; mixed training slightly beats finetuning. "
                        f"The best GBERT run here {shows} that split: birth date and major {e:.1f}% vs the "
                        f"other four {h:.1f}%.", ""]
        probes = {f"GBERT {r['name']}": self.runs.read_json(r, "q_probe.json")
                  for r in self.runs.runs(study="gbert-probe-q")}
        if probes:  # GPT's Q-probe of the same bios, where the probing study ran it
            probes.update({f"GPT {r['name']}": self.runs.read_json(r, "q_probe.json")
                           for r in self.runs.runs(study="probing-q") if r["name"].rsplit("-s", 1)[0] in variants})
            tasks = next(iter(probes.values()))["tasks"]
            ptable = [[f"`{n}`", *[f"{100 * res['accuracy'][t]:.1f}" for t in tasks]] for n, res in probes.items()]
            for n, res in probes.items():
                if not n.startswith("GBERT"):
                    continue
                self.csv_rows += [{"study": "gbert-probe-q", "name": n.split(" ", 1)[1], "metric": "q_probe", "attribute": t,
                                   "value": res["accuracy"][t], "split": "test"} for t in tasks]
            self.md += ["Q-probing the BIO-pretrained models at the end of the bare name (Result 5; "
                        "the paper finds GBERT's Q-probe tracks its QA accuracy too): accuracy (%).", "",
                        _table(["model", *tasks], ptable), ""]

    def emergence(self) -> None:
        from knowlab.report.emergence import EmergenceSection

        md, rows = EmergenceSection(self.runs, self.fig, _table).build()
        self.md += md
        self.csv_rows += rows

    def manipulation(self) -> None:
        """Part 3.2, built in report/manipulation.py."""
        from knowlab.report.manipulation import section

        lines, rows = section(self.runs, self.fig)
        self.md += lines
        self.csv_rows += rows

    def appendix(self) -> None:
        plan = self.runs.plan
        lines = ["## Runs and configs", f"Command: `{plan.get('command', '')}`", "",
                 f"Machine: {plan.get('machine', {})}", "", f"Code version: {plan.get('code_version', '')}", ""]
        if plan.get("history"):
            lines += ["Earlier commands whose finished runs this folder keeps (and this report shows):", ""]
            lines += [history_line(h) for h in plan["history"]]
            lines += [""]
        lines += ["<details><summary>Every run and its resolved settings</summary>", ""]
        for run in plan["runs"]:
            lines.append(f"- `{run['kind']}` **{run['name']}** (`{run['output']}`): `knowlab {' '.join(run['argv'])}`")
        lines += ["", "</details>", ""]
        self.md += lines

    def build(self) -> Path:
        plan = self.runs.plan
        seeds = sorted({r["tags"]["seed"] for r in plan["runs"] if r["tags"].get("seed") is not None}) or plan["seeds"]
        by = ("the command" if not plan.get("history") else
              f"the commands (the last one ran seeds {plan['seeds']})")
        self.md += [f"# knowlab study: {plan['study']} (preset `{plan['preset']}`)", "",
                    f"Seeds {seeds}; finished {plan.get('finished', 'not yet')}. Every number below was "
                    f"produced by {by} and machine in the last section.", ""]
        for section in (self.augmentation, self.mixed, self.probing, self.celebrity, self.scaling, self.gbert,
                        self.emergence, self.manipulation, self.appendix):
            section()
        text = "\n".join(self.md)
        write_text_atomic(self.root / "report.md", text)
        write_text_atomic(self.root / "report.html", markdown_to_html(text, self.root, title=f"knowlab {plan['study']}"))
        buf = io.StringIO()
        fields = ["study", "name", "variant", "seed", "point", "split", "metric", "attribute", "value", "finetune"]
        writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(self.csv_rows)
        write_text_atomic(self.root / "results.csv", buf.getvalue())
        return self.root / "report.md"


def build_report(root: str | Path) -> Path:
    return Report(Path(root)).build()
