"""What a study prints: progress while its runs work, the table at its end."""

import json
from pathlib import Path

from knowlab.study.live import LiveTable, progress_line
from knowlab.study.plan import Run
from knowlab.study.runner import execute


def test_an_all_cached_study_prints_a_sentence_not_an_empty_table(tmp_path: Path):
    text = LiveTable(tmp_path, []).render()
    assert "No evaluation ran this time" in text and "QA exact match" not in text


def test_a_finished_evaluation_gets_a_row_under_the_header(tmp_path: Path):
    table = LiveTable(tmp_path, [])
    table.lines.append("augmentation  single-s0  97.0  10.4")
    text = table.render()
    assert text.index("QA exact match") < text.index(table.head) < text.index("single-s0")


def _running(root: Path, kind: str = "pretrain") -> tuple[Run, Path]:
    run = Run(kind, "multi5-s0", ["train", kind, "--out", "{out}"])
    out = run.path(root)
    out.mkdir(parents=True)
    return run, out


def test_a_running_pretraining_shows_its_step_speed_and_time_left(tmp_path: Path):
    run, out = _running(tmp_path)
    (out / "run.json").write_text(json.dumps({"budget": {"steps": 100}}))
    rows = [{"step": s, "loss": 1.0, "tokens": s * 64, "tokens_per_s": 3210.0, "elapsed": s * 3.0} for s in (10, 20, 30, 40)]
    # an evaluation row and a line still being written come after the last training row
    (out / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 40, "qa": 0.5}\n{"st')
    line = progress_line(run, tmp_path, 150.0)
    assert "pretrain" in line and "multi5-s0: 2.5 min" in line
    assert "step 40 of 100 (40%)" in line and "3,210 tokens/s" in line and "about 3 min left" in line


def test_a_finetune_is_read_from_its_partial_folder_and_a_fresh_run_shows_its_minutes(tmp_path: Path):
    run, out = _running(tmp_path, "finetune")
    assert progress_line(run, tmp_path, 60.0).endswith("multi5-s0: 1.0 min")  # nothing logged yet
    partial = out.with_name(f".{out.name}.partial")
    partial.mkdir()
    (partial / "metrics.jsonl").write_text(json.dumps({"step": 20, "loss": 0.3, "elapsed": 9.0}) + "\n")
    line = progress_line(run, tmp_path, 60.0)
    assert "step 20" in line and " of " not in line and "left" not in line  # no total known: no guess


def test_the_runner_reports_running_runs_between_start_and_end(tmp_path: Path):
    run = Run("data", "ticks", ["data", "generate", "--out", "{out}", "--people", "8"])
    ticks, done = [], []
    execute([run], tmp_path, log=lambda _: None, on_done=lambda r, s: done.append(r.name),
            on_tick=lambda r, s: ticks.append((r.name, s)), tick_every=0.0)
    assert done == ["ticks"] and ticks and all(name == "ticks" and s >= 0 for name, s in ticks)
