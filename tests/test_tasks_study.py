"""The manipulation study: its plan (sharing the augmentation study's base model), its report
section, and a toy-scale end-to-end run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from knowlab.data.tasks import family_tasks
from knowlab.errors import KnowlabError
from knowlab.study.plan import Planner
from knowlab.study.session import load_study_config


def plan(study: str, **extra: str):
    cfg = load_study_config("tiny", extra)
    planner = Planner(cfg, "tiny", [0], extra)
    return planner, planner.plan(study)


def test_the_base_model_is_the_augmentation_studys_run():
    _, aug = plan("augmentation")
    planner, rows = plan("manipulation")
    aug_pretrain = {d.key for r in aug for d in r.deps if d.kind == "finetune" for d in d.deps if d.kind == "pretrain"}
    pretrains = [r for r in planner.ordered() if r.kind == "pretrain"]
    assert len(pretrains) == 1 and pretrains[0].key in aug_pretrain


def test_retrieval_is_read_against_the_augmentation_studys_extraction_of_the_same_model():
    _, aug = plan("augmentation")
    _, rows = plan("manipulation")
    [extraction] = [r for r in rows if r.kind == "eval"]
    assert extraction.tags["study"] == "manipulation-extraction"
    assert extraction.key in {r.key for r in aug if r.tags["study"] == "augmentation"}


def test_the_plan_has_a_curve_with_and_without_hints():
    planner, rows = plan("manipulation", **{"manipulation.train_fractions": "[0.2, 1.0]"})
    rows = [r for r in rows if r.kind == "eval-tasks"]
    assert all(r.tags["study"] == "manipulation" for r in rows)
    got = sorted((r.tags["family"], r.tags["train_people"], r.tags["hints"]) for r in rows)
    # tiny: 250 people, P_train 125
    assert got == sorted([("retrieval", 0, "none"), ("inverse", 0, "none")]
                         + [(f, n, h) for f in ("classification", "comparison") for n in (25, 125)
                            for h in ("none", "mixed")])
    tuned = {r.tags["family"] + str(r.tags["train_people"]) + r.tags["hints"]: next(d for d in r.deps if d.kind == "finetune")
             for r in rows}
    assert all("eval_every=0" in t.argv and "method=full" in t.argv for t in tuned.values())
    # tiny.yaml's family_finetune: retrieval 350, classification 1,200, the rest `finetune`'s 600
    steps = {k: next(a for a in t.argv if a.startswith("steps=")) for k, t in tuned.items()}
    assert steps.pop("retrieval0none") == "steps=350" and steps.pop("inverse0none") == "steps=600"
    assert {v for k, v in steps.items() if k.startswith("classification")} == {"steps=1200"}
    assert {v for k, v in steps.items() if k.startswith("comparison")} == {"steps=600"}
    assert len({t.key for t in tuned.values()}) == len(rows)


def test_family_finetune_overrides_one_family_only():
    _, rows = plan("manipulation", **{"manipulation.train_fractions": "[1.0]",
                                      "manipulation.family_finetune": "{retrieval: {steps: 7}}"})
    steps = {r.tags["family"]: next(a for a in next(d for d in r.deps if d.kind == "finetune").argv
                                    if a.startswith("steps="))
             for r in rows if r.kind == "eval-tasks"}
    assert steps.pop("retrieval") == "steps=7"
    assert set(steps.values()) == {"steps=600"} and steps  # the others keep `finetune`
    with pytest.raises(KnowlabError, match="'sorting' is not a task family"):
        plan("manipulation", **{"manipulation.family_finetune": "{sorting: {steps: 7}}"})


def test_m_prime_and_inverse_search_on_reversed_bios():
    planner, rows = plan("manipulation", **{"manipulation.extraction_first": "true",
                                            "manipulation.families": "[inverse]",
                                            "manipulation.inverse_variants": "[reverse6, multi5+permute+fullname]"})
    rows = [r for r in rows if r.kind == "eval-tasks"]
    assert [(r.tags["variant"], r.tags["base"]) for r in rows] == [("multi5+permute+fullname", "M'"), ("reverse6", "M'")]
    for r in rows:
        tuned = next(d for d in r.deps if d.kind == "finetune")
        m_prime = next(d for d in tuned.deps if d.kind == "finetune")  # the six-QA extraction finetune
        assert next(d for d in m_prime.deps if d.kind == "pretrain").tags["variant"] == r.tags["variant"]
    _, aug = plan("augmentation")
    aug_tuned = {d.key for r in aug for d in r.deps if d.kind == "finetune"}
    assert m_prime.key not in aug_tuned  # reverse6's; the base variant's is shared:
    first = next(d for d in rows[0].deps if d.kind == "finetune")
    assert next(d for d in first.deps if d.kind == "finetune").key in aug_tuned


def test_manipulation_stays_out_of_all_and_bad_settings_are_errors():
    _, rows = plan("all")
    assert not any(r.tags["study"] == "manipulation" for r in rows)
    with pytest.raises(KnowlabError, match="not a task family"):
        load_study_config("tiny", {"manipulation.families": "[retrieval,sorting]"})
    with pytest.raises(KnowlabError, match="train_fractions"):
        load_study_config("tiny", {"manipulation.train_fractions": "[0, 1]"})


def _fake_eval(family: str, acc: float, hint_acc: float | None = None) -> dict:
    from knowlab.data.schema import ATTRIBUTES

    tasks = family_tasks(family)
    # retrieval: the partial and dual tasks 20 points under the six full-attribute ones
    exact = {t: acc - 0.2 if family == "retrieval" and t not in ATTRIBUTES else acc for t in tasks}
    test = {"rows": 10, "baseline": {t: 0.5 for t in tasks},
            "answer": {"exact": {**exact, "mean": acc}}}
    if hint_acc is not None:
        test["hint"] = {"exact": {**{t: hint_acc for t in tasks}, "mean": hint_acc},
                        "hint": {**{t: 1.0 for t in tasks}, "mean": 1.0}}
    return {"splits": {"test": test}}


def test_report_section_tables_baselines_and_findings(tmp_path):
    from knowlab.report.build import build_report

    runs = []
    cases = [("retrieval", 0, "none", 0.9, None), ("inverse", 0, "none", 0.0, None),
             ("inverse", 0, "none", 0.4, None)]
    cases += [(f, n, h, 0.5 if h == "none" else 0.55, 0.95 if h == "mixed" else None)
              for f in ("classification", "comparison") for n in (10, 20) for h in ("none", "mixed")]
    for k, (family, n, hints, acc, hint_acc) in enumerate(cases):
        out = tmp_path / "eval-tasks" / f"run{k}"
        out.mkdir(parents=True)
        (out / "eval_tasks.json").write_text(json.dumps(_fake_eval(family, acc, hint_acc)))
        (tmp_path / "eval-tasks" / f"run{k}.done.json").write_text("{}")
        runs.append({"kind": "eval-tasks", "name": f"run{k}", "key": str(k), "argv": [], "deps": [],
                     "output": f"@/eval-tasks/run{k}",
                     "tags": {"study": "manipulation", "studies": ["manipulation"], "family": family,
                              "train_people": n, "hints": hints, "seed": 0, "base": "M",
                              "variant": "reverse6" if (family, acc) == ("inverse", 0.4) else "multi5+permute",
                              "name": f"{family}-n{n}-{hints}"}})
    # the augmentation study's six-QA extraction of the same model: 93% against full-attribute retrieval's 90%
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "extraction.json").write_text(json.dumps({"splits": {"test": {"exact": {"mean": 0.93}}}}))
    (tmp_path / "eval" / "extraction.json.done.json").write_text("{}")
    runs.append({"kind": "eval", "name": "extraction", "key": "x", "argv": [], "deps": [],
                 "output": "@/eval/extraction.json",
                 "tags": {"study": "manipulation-extraction", "studies": ["manipulation-extraction"], "seed": 0,
                          "variant": "multi5+permute", "name": "multi5+permute"}})
    (tmp_path / "study.json").write_text(json.dumps({"study": "manipulation", "preset": "tiny", "seeds": [0],
                                                     "runs": runs}))
    report = build_report(tmp_path).read_text()
    assert "Full-attribute retrieval (the six extraction questions" in report
    assert "is within 5 points of the same base model's six-QA extraction" in report and "90.0%, -3.0 points" in report
    assert "| company_city | 90.0 | 50.0 | above 96.6 (mean) |" in report
    assert "## Part 3.2: knowledge manipulation" in report
    assert "| birth_day | 70.0 | 50.0 | 82.3 |" in report  # ours, baseline, the paper's
    assert "| month_later | 20 | 50.0 | 95.0 | 100.0 | 55.0 | 50.0 |" in report
    assert "| month_mod2 | 60.4/67.3/75.9/86.4/95.3 |" in report
    assert "inverse-search failure appears" in report
    assert "| all_to_first | 0.0 | 40.0 | 50.0 | about 0 |" in report
    assert "| university+major | 70.0 | 50.0 | near 100 |" in report and "by greedy decoding" in report
    assert "On `reverse6` bios inverse search improves" in report
    assert "Retrieval of part of a value or two values at once appears at this scale: 70.0% on average" in report
    assert "Month ranking without a hint does **not** rise" in report
    assert "The hint (chain of thought) helps `month_later`" in report
    assert ("The hint helps even/odd month by 15 points or more at 20 training people: 95.0% trained and tested "
            "with it against 50.0% trained without it") in report
    assert (tmp_path / "figures" / "manipulation.png").is_file()
    csv = (tmp_path / "results.csv").read_text()
    assert "manipulation,comparison-n20-mixed,multi5+permute,0,comparison/n20/mixed,test,hint_accuracy,month_later,1.0" in csv


def test_full_retrieval_finding_is_the_mean_gap_over_seeds(tmp_path):
    from knowlab.report.collect import StudyRuns
    from knowlab.report.manipulation import _full_retrieval_finding, _rows

    runs = []
    # per seed: (full-attribute retrieval, six-QA extraction); gaps -2, -6, -7 points, mean -5.0
    for seed, (full, extraction) in enumerate([(0.90, 0.92), (0.80, 0.86), (0.81, 0.88)]):
        (tmp_path / "eval-tasks" / f"r{seed}").mkdir(parents=True)
        (tmp_path / "eval-tasks" / f"r{seed}" / "eval_tasks.json").write_text(json.dumps(_fake_eval("retrieval", full)))
        (tmp_path / "eval-tasks" / f"r{seed}.done.json").write_text("{}")
        (tmp_path / "eval").mkdir(exist_ok=True)
        (tmp_path / "eval" / f"x{seed}.json").write_text(
            json.dumps({"splits": {"test": {"exact": {"mean": extraction}}}}))
        (tmp_path / "eval" / f"x{seed}.json.done.json").write_text("{}")
        runs += [{"kind": "eval-tasks", "output": f"@/eval-tasks/r{seed}",
                  "tags": {"studies": ["manipulation"], "family": "retrieval", "train_people": 0,
                           "hints": "none", "seed": seed, "base": "M", "variant": "v"}},
                 {"kind": "eval", "output": f"@/eval/x{seed}.json",
                  "tags": {"studies": ["manipulation-extraction"], "seed": seed, "variant": "v"}}]
    study = StudyRuns(tmp_path, {"runs": runs})
    [line] = _full_retrieval_finding(study, _rows(study))
    assert "is within 5 points" in line and "83.7 ± 5.5%, -5.0 points" in line
    assert "extraction (the augmentation study's finetune, P_test exact match 88.7 ± 3.1%)" in line
    assert "per seed -2.0, -6.0, -7.0; std 2.6" in line
    # without seed 0 the mean gap is -6.5: outside the 5-point band
    study.plan["runs"] = runs[2:]
    assert "is **not** within 5 points" in _full_retrieval_finding(study, _rows(study))[0]


def test_toy_manipulation_study_runs_end_to_end(tmp_path):
    """Every stage (tasks, finetune, eval-tasks, report) at toy scale; the science is not checked.
    About a minute and a quarter on a quiet 2-core CPU (eight knowlab processes, two at a time)."""
    smoke = ["data.people=24", "data.vocab_size=400", "pretrain.steps=4", "pretrain.batch=4",
             "pretrain.checkpoint_every=0", "pretrain.optim.warmup_steps=1", "finetune.steps=2",
             "finetune.batch_size=4", "manipulation.train_fractions=[1.0]", "manipulation.families=[comparison]",
             "manipulation.eval_rows=4"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    out = tmp_path / "study"
    start = time.time()
    # Its own process group, so a timeout also ends the runs the study started.
    proc = subprocess.Popen([sys.executable, "-m", "knowlab.cli", "study", "run", "manipulation", "--preset", "tiny",
                             "--out", str(out), *smoke], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=900)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    r = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    report = (out / "report.md").read_text()
    assert "## Part 3.2: knowledge manipulation" in report and "| month_later | 12 |" in report
    assert "### Findings" in report and "(hint acc " in r.stdout  # the live table's manipulation lines
    plan_runs = json.loads((out / "study.json").read_text())["runs"]
    assert sorted(run["kind"] for run in plan_runs) == sorted(
        ["data", "pretrain"] + ["tasks", "finetune", "eval-tasks"] * 2 + ["finetune", "eval"])  # + extraction
    print(f"toy manipulation study: {time.time() - start:.0f} s")
