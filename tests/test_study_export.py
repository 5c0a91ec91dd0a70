"""`knowlab study export`: a study folder without weights rebuilds the same results and continues."""

import fcntl
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from knowlab.errors import KnowlabError
from knowlab.study.export import keep
from knowlab.study.plan import Run
from knowlab.study.runner import execute
from test_study import SMOKE, knowlab


def test_only_small_report_files_are_kept():
    assert keep(Path("eval/single-s0-ab.json"), 1_000)
    assert keep(Path("pretrain/x/metrics.jsonl"), 1_000)
    assert keep(Path("report.md"), 1_000)
    assert not keep(Path("pretrain/x/model.safetensors"), 1_000)
    assert not keep(Path("data/x/bios.parquet"), 1_000)
    assert not keep(Path("pretrain/x/checkpoints/step-200/state.json"), 1_000)
    assert not keep(Path("data/x/tokenizer/tokenizer.json"), 1_000)
    assert not keep(Path("eval/huge.json"), 50_000_000)


def test_an_export_reports_the_same_numbers_and_reruns_only_what_a_new_run_needs(tmp_path):
    study = tmp_path / "study"
    r = knowlab("study", "run", "augmentation", "--preset", "tiny", "--out", str(study), *SMOKE)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    out = tmp_path / "exported"
    r = knowlab("study", "export", str(study), "--out", str(out))
    assert r.returncode == 0 and "files kept" in r.stdout, r.stdout + r.stderr
    assert not list(out.rglob("*.safetensors")) and not list(out.rglob("*.parquet"))
    # a run that never finished leaves nothing in the export
    (study / "pretrain" / "unfinished").mkdir()
    (study / "pretrain" / "unfinished" / "metrics.jsonl").write_text("{}\n")
    plan = json.loads((study / "study.json").read_text())
    plan["runs"].append({**plan["runs"][1], "key": "u", "output": "@/pretrain/unfinished"})
    (study / "study.json").write_text(json.dumps(plan))
    # nor does a finished run the plan does not name (e.g. copied in from another study folder)
    (study / "eval" / "stray-s0-ab.json").write_text("{}")
    (study / "eval" / "stray-s0-ab.json.done.json").write_text("{}")
    r = knowlab("study", "export", str(study), "--out", str(tmp_path / "again"))
    assert r.returncode == 0 and not (tmp_path / "again" / "pretrain" / "unfinished").exists()
    assert not list((tmp_path / "again" / "eval").glob("stray*")) and (tmp_path / "again" / "report.md").is_file()
    summary = json.loads((out / "EXPORT.json").read_text())
    assert summary["runs_trimmed"] and summary["bytes_cut"] > 0

    (out / "results.csv").unlink()
    r = knowlab("study", "report", str(out))
    assert r.returncode == 0, r.stderr
    assert (out / "results.csv").read_text() == (study / "results.csv").read_text()

    # every run is cached in the export ...
    r = knowlab("study", "run", "augmentation", "--preset", "tiny", "--out", str(out), *SMOKE)
    assert r.returncode == 0 and "start " not in r.stdout, r.stdout[-3000:] + r.stderr[-3000:]
    # ... and a new finetune of the exported models runs their data and pretraining again first
    r = knowlab("study", "run", "augmentation", "--preset", "tiny", "--out", str(out), *SMOKE, "finetune.steps=3")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "start pretrain" in r.stdout and "start finetune" in r.stdout and "start data" in r.stdout


def test_bad_exports_are_one_line(tmp_path):
    r = knowlab("study", "export", str(tmp_path), "--out", str(tmp_path / "x"))
    assert r.returncode != 0 and "not a study folder" in r.stderr and "Traceback" not in r.stderr
    (tmp_path / "study.json").write_text('{"runs": []}')
    (tmp_path / "x").mkdir()
    r = knowlab("study", "export", str(tmp_path), "--out", str(tmp_path / "x"))
    assert r.returncode != 0 and "already exists" in r.stderr and "Traceback" not in r.stderr
    r = knowlab("study", "export", str(tmp_path), "--out", str(tmp_path / "y"))
    assert r.returncode != 0 and "inside the study folder" in r.stderr
    assert not (tmp_path / "y").exists()


def test_a_run_held_by_another_process_is_not_started_twice(tmp_path):
    run = Run("data", "held", ["data", "generate", "--out", "{out}", "--people", "8"])
    run.path(tmp_path).parent.mkdir(parents=True)
    with open(tmp_path / "data" / (run.path(tmp_path).name + ".lock"), "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(KnowlabError, match="running in another process"):
            execute([run], tmp_path, log=lambda _: None)
    assert not run.path(tmp_path).exists()


def test_stopping_a_study_stops_its_runs(tmp_path):
    out = tmp_path / "study"
    cmd = [sys.executable, "-m", "knowlab.cli", "study", "run", "augmentation", "--preset", "tiny",
           "--out", str(out), *SMOKE, "pretrain.steps=100000"]
    study = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in study.stdout:
        if line.startswith("start pretrain"):
            break
    time.sleep(3)
    study.send_signal(signal.SIGTERM)
    _, err = study.communicate(timeout=60)
    assert study.returncode != 0 and "stopped by signal" in err and "Traceback" not in err
    time.sleep(1)
    alive = [p for p in Path("/proc").iterdir() if p.name.isdigit() and str(out).encode() in _cmdline(p)]
    assert not alive


def _cmdline(proc: Path) -> bytes:
    try:
        return (proc / "cmdline").read_bytes()
    except OSError:
        return b""
