"""Study plans without running them: the paper preset's finetune grid, GBERT's QA ratios and the
probed variants; the report's choice of the best finetune of each method."""

import json

import pytest

from knowlab.data.schema import ATTRIBUTES
from knowlab.errors import KnowlabError
from knowlab.study.plan import Planner
from knowlab.report.build import history_line
from knowlab.study.session import load_study_config, merged_study_name, plan_summary, read_study_preset

FIGURE3 = 16


def _plan(preset: str, study: str, **extra):
    cfg = load_study_config(preset, {k: str(v) for k, v in extra.items()})
    planner = Planner(cfg, preset, [0], {})
    planner.plan(study)
    return cfg, planner.ordered()


def test_paper_plan_has_the_finetune_grid_gbert_ratios_and_every_probed_variant():
    cfg, runs = _plan("paper", "all")
    tunes = [r for r in runs if r.kind == "finetune" and r.tags.get("study") != "gbert-finetune"
             and not r.name.startswith("gbert-")]
    labels = {r.tags["finetune"] for r in tunes}
    assert labels == {"lora-r8", "lora-r16"} | {f"full-lr{lr}-wd{wd}" for lr in ("1e-3", "3e-4", "1e-4")
                                                for wd in ("0.01", "1e-3")}
    single = [r for r in tunes if r.tags["variant"] == "single" and "celebrity" not in r.name]
    assert len(single) == 8 and any("lora.r=16" in r.argv for r in single)
    assert any({"method=full", "full_lr=0.0003", "optim.weight_decay=0.001"} <= set(r.argv) for r in single)
    gbert_mixed = [r for r in runs if r.kind == "pretrain" and r.name.startswith("gbert-mixed")]
    assert sorted(r.tags["qa_ratio"] for r in gbert_mixed) == [0.2, 0.8]
    assert {r.tags["variant"] for r in runs if r.kind == "pretrain" and r.name.startswith("gbert-multi")} \
        == {cfg.gbert_variant}
    probed = {r.tags["variant"] for r in runs if r.kind == "probe-q" and not r.name.startswith("gbert")}
    assert len(probed) == FIGURE3 == len(cfg.augmentation_variants) and probed == set(cfg.augmentation_variants)
    text = plan_summary(cfg, "all")
    assert "LoRA q/v r in {8, 16}" in text and "lr in {1e-3, 3e-4, 1e-4}" in text
    assert "QA_r 0.2, 0.8" in text and "Probed variants (16" in text and "`multi5+permute` bios" in text


def test_every_stage_run_carries_its_resolved_typed_config():
    from knowlab.data.config import DataConfig
    from knowlab.train.config import PretrainConfig
    from knowlab.train.finetune import FinetuneConfig

    cfg, runs = _plan("tiny", "augmentation")
    by_kind = {r.kind: r.config for r in runs}
    assert isinstance(by_kind["data"], DataConfig) and by_kind["data"].people == 250
    assert isinstance(by_kind["pretrain"], PretrainConfig) and by_kind["pretrain"].steps == 800  # tiny.yaml
    assert isinstance(by_kind["finetune"], FinetuneConfig) and by_kind["finetune"].method == "full"
    assert by_kind["eval"] is None  # configured by flags alone


def test_without_a_grid_the_tiny_plan_has_one_finetune_per_model_and_no_gbert_in_all():
    _, runs = _plan("tiny", "all")
    tunes = [r for r in runs if r.kind == "finetune"]
    assert len({r.deps[0].key for r in tunes}) == len(tunes)
    assert not any("finetune" in r.tags for r in tunes)
    assert not any(r.name.startswith("gbert") for r in runs)
    _, with_grid = _plan("tiny", "augmentation", **{"finetune_grid.lora_r": "[8, 16]"})
    assert len([r for r in with_grid if r.kind == "finetune"]) == 2 * len(tunes[:2])


def test_small_is_tiny_with_the_budgets_where_the_sweep_saw_more():
    # configs/study/small.yaml: tiny's augmentation and probing runs (the same cache keys), the
    # celebrity minority at 300 exposures (the emergence sweep's point, shared) and mixed at 100.
    _, tiny = _plan("tiny", "all")
    _, small = _plan("small", "all")
    assert {r.key for r in tiny if r.kind == "probe-q"} == {r.key for r in small if r.kind == "probe-q"}
    celebrity = [r for r in small if r.kind == "pretrain" and "permute1" in r.name]
    assert len(celebrity) == 2 and all("exposures=300" in r.argv for r in celebrity)
    mixed = [r for r in small if r.kind == "pretrain" and r.name.startswith(("mixed", "scaling"))]
    assert mixed and all("exposures=100" in r.argv for r in mixed)
    _, sweep = _plan("tiny", "emergence", **{"emergence.celebrity_exposures": "[300]", "emergence.probe_widths": "[]",
                                             "emergence.probe_people": "[]", "emergence.mixed_people": "[]",
                                             "emergence.mixed_exposure_points": "[]", "emergence.gbert_exposures": "[]",
                                             "emergence.probe_exposure_points": "[]", "emergence.probe_depths": "[]"})
    assert {r.key for r in celebrity} == {r.key for r in sweep if r.kind == "pretrain"}


def test_a_preset_with_a_base_takes_its_settings_and_says_only_what_differs(tmp_path, monkeypatch):
    (tmp_path / "study").mkdir()
    presets = {"a": "data: {people: 10, vocab_size: 99}\nemergence: {mixed_people: [1, 2], evals: 3}\nparallel: 2\n",
               "b": "base: a\ndata: {people: 20}\nemergence: {mixed_people: [5]}\n",
               "loop1": "base: loop2\n", "loop2": "base: loop1\n", "odd": "base: [a]\n"}
    for name, text in presets.items():
        (tmp_path / "study" / f"{name}.yaml").write_text(text)
    monkeypatch.setattr("knowlab.config.PRESET_DIR", tmp_path)
    # mappings merge key by key; lists and scalars replace
    assert read_study_preset("b") == {"data": {"people": 20, "vocab_size": 99},
                                      "emergence": {"mixed_people": [5], "evals": 3}, "parallel": 2}
    with pytest.raises(KnowlabError, match="loop1 -> loop2 -> loop1"):
        read_study_preset("loop1")
    with pytest.raises(KnowlabError, match="base must be the name of another study preset"):
        read_study_preset("odd")
    (tmp_path / "study" / "c.yaml").write_text("base: a2\n")
    with pytest.raises(KnowlabError, match="unknown study preset 'a2'"):
        read_study_preset("c")


def _fake_study(root, scores: dict):
    """A study folder whose augmentation evals scored `scores[(variant, label)]` on every attribute."""
    runs = []
    for i, ((variant, label), score) in enumerate(scores.items()):
        out = f"@/eval/{variant}-{label}-{i}.json"
        tags = {"study": "augmentation", "studies": ["augmentation"], "variant": variant, "seed": 0,
                "name": variant, "finetune": label, "method": label.split("-")[0]}
        runs.append({"kind": "eval", "name": f"{variant}-{label}", "key": str(i), "argv": [], "output": out,
                     "deps": [], "tags": tags})
        metrics = {a: score for a in (*ATTRIBUTES, "mean")}
        (root / out[2:]).parent.mkdir(parents=True, exist_ok=True)
        (root / out[2:]).write_text(json.dumps({"splits": {"test": {"exact": metrics}}}))
        (root / (out[2:] + ".done.json")).write_text("{}")
    (root / "study.json").write_text(json.dumps({"study": "augmentation", "preset": "paper", "seeds": [0],
                                                 "runs": runs}))


def test_report_keeps_the_best_setting_of_each_method_and_says_which_won(tmp_path):
    from knowlab.report.build import build_report

    _fake_study(tmp_path, {("single", "lora-r8"): 0.05, ("single", "lora-r16"): 0.09,
                           ("single", "full-lr1e-3-wd0.01"): 0.02, ("single", "full-lr1e-4-wd0.01"): 0.04})
    report = build_report(tmp_path).read_text()
    assert "| `single (lora-r16)` | knowlab |" in report and "| `single (full-lr1e-4-wd0.01)` |" in report
    assert "`single (lora-r8)`" not in report and "(full-lr1e-3-wd0.01)`" not in report
    assert "Winners: lora: `lora-r16` for 1 model(s); full: `full-lr1e-4-wd0.01` for 1 model(s)" in report
    assert report.count("|  | paper |") == 1  # the paper's row once per variant
    csv = (tmp_path / "results.csv").read_text()
    assert "lora-r8" in csv  # every setting stays in results.csv


def test_bad_grid_and_ratio_settings_are_one_clear_error():
    with pytest.raises(KnowlabError, match="full_lr and full_weight_decay go together"):
        load_study_config("tiny", {"finetune_grid.full_lr": "[1e-4]"})
    with pytest.raises(KnowlabError, match="gbert_qa_ratios"):
        load_study_config("tiny", {"gbert_qa_ratios": "[0.2, 1.5]"})


def test_a_folder_names_each_study_once_and_each_earlier_command_plainly():
    name = merged_study_name("all", "celebrity")
    assert name == "all+celebrity"
    assert merged_study_name(name, "celebrity") == "all+celebrity"
    assert merged_study_name("celebrity", "all") == "all"
    stopped = {"command": "knowlab study run celebrity --seeds 2", "code_version": "x", "seeds": [2]}
    assert history_line(stopped).endswith("seeds [2], stopped before it finished)")
    done = {**stopped, "finished": "2026-12-06 17:58:14"}
    assert history_line(done).endswith("seeds [2], finished 2026-12-06 17:58:14)")
