"""Studies: the paper plan (dry run), an end-to-end plumbing smoke of every study, caching, and
the tiny augmentation study's thresholds (slow: 20 minutes on the 2-core dev box on 2026-12-06)."""

import csv
import json
import os
import subprocess
import sys

import pytest

# Everything tiny: the smoke checks that every stage runs and the report renders, not the science.
SMOKE = [
    "data.people=24", "data.vocab_size=400",
    "pretrain.steps=4", "pretrain.batch=4", "pretrain.model.context=64", "pretrain.checkpoint_every=0",
    "pretrain.optim.warmup_steps=1", "pretrain.eval_every=2",
    "finetune.steps=2", "finetune.batch_size=4",
    "probe.steps=3", "probe.batch_size=8",
    "mixed_eval_every=2", "gbert_steps=3",
]


def knowlab(*args, env=None, timeout=1200):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", **(env or {})}
    return subprocess.run([sys.executable, "-m", "knowlab.cli", *args], capture_output=True, text=True,
                          env=env, timeout=timeout)


def test_paper_dry_run_prints_the_plan_without_training(tmp_path):
    r = knowlab("study", "run", "augmentation", "--preset", "paper", "--dry-run", "--out", str(tmp_path / "s"))
    assert r.returncode == 0, r.stderr
    assert "Estimated pretraining time" in r.stdout
    pretrains = [line.split() for line in r.stdout.splitlines() if line.startswith("pretrain ")]
    assert len(pretrains) == 16  # the 16 variants of Figure 3
    # every model gets the paper's 540 exposures per person; the steps follow each dataset
    assert all(row[4] == "540" and row[2].startswith("~") for row in pretrains)
    assert all(abs(float(row[5].replace(",", "")) - 540) <= 5 for row in pretrains)  # the paper's, next to ours
    assert "LoRA q/v r in {8, 16}" in r.stdout and "single-s0-full-lr3e-4-wd0.01" in r.stdout
    assert not (tmp_path / "s").exists()


def test_bad_study_arguments_are_one_line(tmp_path):
    r = knowlab("study", "run", "augmentation", "--preset", "huge", "--out", str(tmp_path / "s"))
    assert r.returncode == 2 and "unknown study preset 'huge'" in r.stderr and "Traceback" not in r.stderr
    r = knowlab("study", "run", "augmentation", "--seeds", "a,b", "--out", str(tmp_path / "s"))
    assert r.returncode == 2 and "--seeds" in r.stderr
    r = knowlab("study", "report", str(tmp_path))
    assert r.returncode == 2 and "not a study folder" in r.stderr


def test_a_bad_stage_setting_fails_when_the_plan_is_built(tmp_path):
    # Each planned run's config is resolved at plan time, so a typo fails before any run starts,
    # naming the key and the run, and leaves no study folder behind.
    for setting, word in (("pretrain.stepz=5", "'stepz'"), ("finetune.method=lorra", "lorra"),
                          ("data.peeple=10", "'peeple'"), ("probe.stepz=3", "'p.stepz'")):
        r = knowlab("study", "run", "all", "--preset", "tiny", setting, "--out", str(tmp_path / "s"), timeout=120)
        assert r.returncode == 2 and word in r.stderr and "of the study" in r.stderr, (setting, r.stderr)
        assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "s").exists()


def test_every_study_runs_end_to_end_and_the_report_renders(tmp_path):
    out = tmp_path / "smoke"
    r = knowlab("study", "run", "all", "--preset", "tiny", "--out", str(out), *SMOKE)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    report = (out / "report.md").read_text()
    for heading in ("Results 2-3", "Result 1: mixed", "Results 4-5", "Result 6", "Mixed training at scale"):
        assert heading in report
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "<table>" in html
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert {r["study"] for r in rows} >= {"augmentation", "mixed", "probing-p", "probing-q", "celebrity"}
    # the gbert study reuses the GPT runs above and adds its own; its section joins the report
    r = knowlab("study", "run", "gbert", "--preset", "tiny", "--out", str(out), *SMOKE)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    report = (out / "report.md").read_text()
    assert "Result 7" in report and "| GBERT | BIO + finetune |" in report and "study full" in report
    # the report still shows the first command's runs, so it names that command too
    earlier = report.split("Earlier commands whose finished runs this folder keeps")[1].split("<details>")[0]
    assert "study run all --preset tiny" in earlier and "seeds [0]" in earlier
    assert "Every number below was produced by the commands (the last one ran seeds [0])" in report
    # a rerun finds every run cached and does no work
    r2 = knowlab("study", "run", "all", "--preset", "tiny", "--out", str(out), *SMOKE)
    assert r2.returncode == 0 and "start " not in r2.stdout
    plan = json.loads((out / "study.json").read_text())
    assert all((out / (run["output"][2:] + ".done.json")).is_file() for run in plan["runs"])


@pytest.mark.slow
def test_tiny_augmentation_study_shows_the_paper_effect(tmp_path):
    """The README's main command: single must fail to extract, multi5+permute+fullname succeed."""
    out = tmp_path / "tiny"
    r = knowlab("study", "run", "augmentation", "--preset", "tiny", "--out", str(out), timeout=3600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    rows = list(csv.DictReader((out / "results.csv").open()))

    def value(study, name, metric):
        hits = [float(r["value"]) for r in rows if r["study"] == study and r["name"] == name
                and r["split"] == "test" and r["metric"] == metric and r["attribute"] == "mean"]
        assert len(hits) == 1, (study, name, metric)
        return hits[0]

    for variant in ("single", "multi5+permute+fullname"):
        assert value("augmentation-pretrained", variant, "bio_first_token") >= 0.95
    assert value("augmentation", "single", "exact") <= 0.15
    assert value("augmentation", "multi5+permute+fullname", "exact") >= 0.50
