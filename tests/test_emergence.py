"""The emergence study: its sweep plan (points, shared runs, budgets in exposures), the report's
verdict rule, and a toy-scale run of every sweep end to end."""

import csv
import json

import pytest
from test_study import SMOKE, knowlab

from knowlab.errors import KnowlabError
from knowlab.report.emergence import Series, trend, verdict
from knowlab.study.plan import Planner
from knowlab.study.session import load_study_config

SWEEP = {"emergence.mixed_people": "250,500", "emergence.mixed_exposure_points": "50,100",
         "emergence.mixed_exposures": "100", "emergence.celebrity_exposures": "100,300",
         "emergence.probe_widths": "64,128", "emergence.probe_people": "250,500",
         "emergence.gbert_exposures": "200,400", "emergence.probe_exposure_points": "100,200",
         "emergence.probe_exposure_people": "500", "emergence.probe_depths": "[]"}


def _plan(extra):
    cfg = load_study_config("tiny", extra)
    planner = Planner(cfg, "tiny", [0], extra)
    return planner, planner.plan("emergence")


def _arg(run, key):
    hits = [a.split("=", 1)[1] for a in run.argv if a.startswith(key + "=")]
    return hits[0] if hits else None


def test_every_sweep_point_is_one_tagged_run():
    planner, rows = _plan(SWEEP)
    points = {(p["result"], p["axis"], p["value"]) for r in rows for p in r.tags["emergence"]}
    assert {("1", "people", 250), ("1", "people", 500), ("1", "exposures", 50), ("1", "exposures", 100)} <= points
    assert {("6", "exposures", 100), ("6", "exposures", 300), ("7", "exposures", 200), ("7", "exposures", 400)} <= points
    assert {("4-5", "width", 64), ("4-5", "width", 128), ("4-5", "people", 250), ("4-5", "people", 500)} <= points
    # each probing point: a Q-probe and its probe-free control, both on the point's pretraining
    for kind in ("probe-q", "probe-readout"):
        runs = [r for r in rows if r.kind == kind]
        assert {(p["axis"], p["value"]) for r in runs for p in r.tags["emergence"]} == {
            ("width", 64), ("width", 128), ("people", 250), ("people", 500), ("exposures", 100), ("exposures", 200)}
    # N=500 at the preset's 200 probe exposures lies on the people and the exposures axes: one run
    pretrains = {r.deps[0].key: r.deps[0] for r in rows if r.kind == "probe-q"}
    assert len(pretrains) == 5
    at_500 = {r.key: r for r in rows if r.kind == "probe-q"
              and {p["axis"] for p in r.tags["emergence"]} == {"people", "exposures"}}
    assert len(at_500) == 1 and _arg(next(iter(at_500.values())).deps[0], "exposures") == "200"
    probe_of = {r.deps[0].key for r in rows if r.kind == "probe-q"}
    assert {r.deps[0].key for r in rows if r.kind == "probe-readout"} == probe_of
    # N=250 at 100 exposures lies on both Result 1 axes: one run, two tags
    shared = {r.key for r in rows if r.tags.get("study") == "emergence-mixed"
              and len({p["axis"] for p in r.tags["emergence"]}) == 2}
    assert len(shared) == 1
    assert len({r.key for r in rows if r.tags.get("study") == "emergence-mixed"}) == 3


def test_sweep_budgets_are_exposures_and_replace_the_presets_steps():
    planner, _ = _plan(SWEEP)
    pretrains = [r for r in planner.ordered() if r.kind == "pretrain"]
    mixed = [r for r in pretrains if r.name.startswith("emergence-mixed")]
    assert mixed and all(_arg(r, "steps") is None and _arg(r, "qa_ratio") == "0.8" for r in mixed)
    assert sorted({_arg(r, "exposures") for r in mixed}) == ["100", "50"]
    celeb = [r for r in pretrains if "single+permute1" in r.name]
    assert sorted({_arg(r, "exposures") for r in celeb}) == ["100", "300"] and len(celeb) == 4
    gbert = [r for r in pretrains if r.name.startswith("gbert")]
    assert all(_arg(r, "objective") == "mlm" for r in gbert) and len(gbert) == 2
    widths = [r for r in pretrains if "-w64-" in r.name]
    assert widths and _arg(widths[0], "model.n_embd") == "64" and _arg(widths[0], "model.n_head") == "2"
    at_500 = [r for r in pretrains if r.name.startswith("emergence-multi5+permute+fullname-w0-n500")]
    assert sorted(_arg(r, "exposures") for r in at_500) == ["100", "200"]


def test_the_depth_axis_keeps_the_presets_width_and_shares_its_own_depth():
    _, rows = _plan({**SWEEP, "emergence.probe_depths": "2,4", "emergence.probe_depth_people": "500"})
    probes = [r for r in rows if r.kind == "probe-q"]
    by_depth = {p["value"]: r for r in probes for p in r.tags["emergence"] if p["axis"] == "depth"}
    assert set(by_depth) == {2, 4}
    two = by_depth[2].deps[0]
    assert (_arg(two, "model.n_layer"), _arg(two, "model.n_head"), _arg(two, "model.n_embd")) == ("2", "4", "128")
    assert two.name.startswith("emergence-multi5+permute+fullname-d2-n500")
    # the tiny preset has 4 layers: that point is the people axis's N=500 run, not a retrained twin
    four = by_depth[4]
    assert {p["axis"] for p in four.tags["emergence"]} == {"depth", "people", "exposures"}
    assert _arg(four.deps[0], "model.n_layer") is None
    assert len({r.deps[0].key for r in probes}) == 6


def test_a_depth_of_zero_is_refused_in_one_line():
    with pytest.raises(KnowlabError, match="probe_depths: each must be a number of layers"):
        load_study_config("tiny", {"emergence.probe_depths": "[2, 0]"})


def test_the_celebrity_point_at_the_command_lines_budget_is_the_same_run():
    """`study run celebrity pretrain.exposures=300` and the emergence point at 300 share runs."""
    extra = {"pretrain.exposures": "300"}
    cfg = load_study_config("tiny", extra)
    plain = Planner(cfg, "tiny", [0], extra)
    plain.plan("celebrity")
    _, rows = _plan({"emergence.celebrity_exposures": "300"})
    ours = {r.key for r in rows}
    assert {r.key for r in plain.runs.values() if r.kind == "eval"} <= ours


def test_the_verdict_names_the_first_point_or_the_trend():
    s = Series("QA")
    for x, v in ((100, 10.0), (200, 20.0), (400, 55.0)):
        s.add(x, v)
    text = verdict("Mixed", "exposures", s, lambda x: s.mean(x) >= 43.3, "half the paper's", "paper 86.6%")
    assert "**appears** from exposures = 400" in text
    text = verdict("Mixed", "exposures", s, lambda x: s.mean(x) >= 60, "rule", "paper 86.6%")
    assert "does **not** appear up to exposures = 400" in text and "rising from 10.0% to 55.0%" in text
    flat = Series("QA")
    for x, v in ((1, 10.0), (2, 30.0), (3, 11.0)):
        flat.add(x, v)
    assert trend(flat) == "flat from 10.0% to 11.0%, not monotonically"
    gap = Series("split", unit=" points")
    gap.add(200, -10.0)
    assert "at that point -10.0 points," in verdict("Split", "exposures", gap, lambda x: False, "rule", "paper")


def test_a_point_run_at_several_seeds_reads_mean_and_std():
    s = Series("Q-probe")
    s.add(250, 19.8)
    for v in (10.0, 12.0, 14.0):
        s.add(500, v)
    assert s.cell(250) == "19.8 (n=1)"  # beside a three-seed mean, a single run says so
    assert s.cell(500) == "12.0 ± 2.0 (n=3)"
    assert s.cell(1000) == "-"
    assert trend(s) == "falling from 19.8% to 12.0%"
    single = Series("QA")
    single.add(250, 91.7)
    assert single.cell(250) == "91.7"


def test_emergence_runs_end_to_end_at_toy_scale(tmp_path):
    out = tmp_path / "em"
    # Budgets in exposures make some toy pretrainings 20-85 steps, so the smoke's evaluation every
    # 2 steps would dominate the test (a GBERT evaluation generates without a cache); without it
    # they evaluate at the end only, and the mixed points keep their `emergence.evals` curves.
    toy = [a for a in SMOKE if not a.startswith(("pretrain.steps", "pretrain.eval_every"))] + [
        "pretrain.exposures=1", "emergence.mixed_people=24,32", "emergence.mixed_exposures=1",
        "emergence.mixed_exposure_points=1", "emergence.celebrity_exposures=1", "emergence.probe_widths=32",
        "emergence.probe_people=32", "emergence.probe_exposure_points=1", "emergence.probe_exposure_people=32",
        "emergence.probe_depths=1,4", "emergence.probe_depth_people=32", "emergence.gbert_exposures=1,2",
        "emergence.evals=2"]
    r = knowlab("study", "run", "emergence", "--preset", "tiny", "--out", str(out), *toy)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    report = (out / "report.md").read_text()
    for heading in ("Emergence", "Result 1: mixed training against", "Result 6: celebrities against",
                    "Results 4-5: Q-probing against", "Result 7: GBERT's per-attribute"):
        assert heading in report
    assert report.count("appear") >= 5  # a verdict per axis
    for axis in ("width", "depth", "people", "exposures"):
        assert f"Control against {axis}: the linear readout at the name reads" in report
    assert (out / "figures" / "emergence-r6.png").is_file() and (out / "figures" / "emergence-r1-people.png").is_file()
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert {"emergence-mixed", "emergence-celebrity", "emergence-probing", "emergence-gbert"} <= {r["study"] for r in rows}
    # every pretraining states its exposures per person
    for run in json.loads((out / "study.json").read_text())["runs"]:
        if run["kind"] == "pretrain":
            meta = json.loads((out / run["output"][2:] / "run.json").read_text())
            assert min(meta["budget"]["exposures"].values()) >= 1


def test_an_exposures_point_of_zero_is_refused_in_one_line():
    with pytest.raises(KnowlabError, match="probe_exposure_points: each must be above 0"):
        load_study_config("tiny", {"emergence.probe_exposure_points": "[100, 0]"})


def test_a_run_planned_again_on_another_axis_keeps_its_earlier_points():
    """Running the sweep an axis at a time into one folder: the point the axes share stays on both."""
    from knowlab.study.session import _keep_sweep_points

    people = {"result": "4-5", "axis": "people", "value": 1000}
    exposures = {"result": "4-5", "axis": "exposures", "value": 200}
    old = [{"key": "a", "tags": {"emergence": [people]}}, {"key": "b", "tags": {"variant": "single"}}]
    new = [{"key": "a", "tags": {"emergence": [exposures]}}, {"key": "b", "tags": {"variant": "single"}},
           {"key": "c", "tags": {"emergence": [people, exposures]}}]
    _keep_sweep_points(old, new)
    assert new[0]["tags"]["emergence"] == [people, exposures]
    assert "emergence" not in new[1]["tags"]
    assert new[2]["tags"]["emergence"] == [people, exposures]
    again = [{"key": "a", "tags": {"emergence": [people]}}]
    _keep_sweep_points(new, again)  # a point already there is not repeated
    assert again[0]["tags"]["emergence"] == [people, exposures]
