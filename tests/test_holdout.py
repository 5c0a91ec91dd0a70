"""Holdout copies: validation people come from P_train only, and everything else is unchanged."""

from __future__ import annotations

import subprocess
import sys

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from datasets import load_dataset

from knowlab.data.dataset import Dataset
from knowlab.data.holdout import write_holdout
from knowlab.data.tasks import TaskConfig, write_tasks


def _split_ids(table, col, split):
    return set(pc.filter(table[col], pc.equal(table["split"], split)).to_pylist())


def test_holdout_splits_p_train_and_drops_p_test(tiny_dataset, tmp_path):
    src = Dataset(tiny_dataset)
    train, test = _split_ids(src.people, "id", "train"), _split_ids(src.people, "id", "test")
    m = write_holdout(tiny_dataset, tmp_path / "h", fraction=0.5, seed=3)
    hold = Dataset(tmp_path / "h")
    h_train, h_test = _split_ids(hold.people, "id", "train"), _split_ids(hold.people, "id", "test")
    assert h_train | h_test == train and not h_train & h_test and not (h_train | h_test) & test
    assert len(h_test) == round(0.5 * len(train)) and m["counts"]["p_test"] == len(h_test)
    for name in ("bios", "qa"):  # every row follows its person; the rows themselves are unchanged
        table = hold.table(name)
        assert _split_ids(table, "person_id", "test") == h_test
        assert _split_ids(table, "person_id", "train") == h_train
        orig = src.table(name).filter(pc.is_in(src.table(name)["person_id"], pa.array(sorted(train), src.table(name)["person_id"].type)))
        assert table.drop(["split"]).equals(orig.drop(["split"]))
    assert m["holdout"]["seed"] == 3 and (tmp_path / "h" / "tokenizer" / "tokenizer.json").is_file()
    again = write_holdout(tiny_dataset, tmp_path / "h2", fraction=0.5, seed=3)
    assert again["files"]["people.parquet"] == m["files"]["people.parquet"]  # deterministic
    other = write_holdout(tiny_dataset, tmp_path / "h3", fraction=0.5, seed=4)
    assert other["files"]["people.parquet"] != m["files"]["people.parquet"]
    # Outside tools read it, and the task builder takes it like any dataset.
    assert load_dataset("parquet", data_files=str(tmp_path / "h" / "qa.parquet"))["train"].num_rows == len(h_train | h_test) * 6
    tasks = write_tasks(tmp_path / "h", tmp_path / "t", TaskConfig(tasks="month_mod2"))
    assert tasks["counts"]["qa_test"] == len(h_test)


@pytest.mark.parametrize("argv, message", [
    (["--fraction", "1.0"], "keeps at least one person on each side"),
    (["--fraction", "0"], "keeps at least one person on each side"),
])
def test_bad_holdout_is_one_line(tiny_dataset, tmp_path, argv, message):
    r = subprocess.run([sys.executable, "-m", "knowlab.cli", "data", "holdout", str(tiny_dataset),
                        "--out", str(tmp_path / "h"), *argv], capture_output=True, text=True)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and message in lines[0], r.stderr
    assert not (tmp_path / "h").exists()


def test_holdout_of_a_holdout_is_refused(tiny_dataset, tmp_path):
    write_holdout(tiny_dataset, tmp_path / "h")
    r = subprocess.run([sys.executable, "-m", "knowlab.cli", "data", "holdout", str(tmp_path / "h"),
                        "--out", str(tmp_path / "h2")], capture_output=True, text=True)
    assert r.returncode == 2 and "already a holdout copy" in r.stderr and "Traceback" not in r.stderr
