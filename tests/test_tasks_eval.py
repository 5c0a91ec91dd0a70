"""Scoring manipulation tasks: the two modes, hint accuracy, baselines, and the CLI."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from knowlab.data.dataset import Dataset
from knowlab.data.tasks import TaskConfig, write_tasks
from knowlab.eval import tasks as eval_tasks
from knowlab.eval.tasks import baselines, evaluate_tasks, parse_hint_mode

from conftest import make_dataset

VALUE = st.text(st.characters(blacklist_characters=".\n", blacklist_categories=("Cs",)), min_size=1).map(str.strip) \
    .filter(bool)


@given(VALUE, VALUE)
def test_hint_mode_continuations_parse_back(hint, answer):
    assert parse_hint_mode(f" {hint}. Answer: {answer}. He was") == (hint, answer)
    assert parse_hint_mode(f" {hint}. {answer}.") == (hint, answer)  # the paper's format, no marker
    assert parse_hint_mode(f" {hint}")[1] == ""  # no period: no answer


def test_baseline_is_the_majority_class():
    rows = [{"task": "t", "answer": a} for a in ("No", "No", "Yes")] + [{"task": "u", "answer": "1"}]
    assert baselines(rows) == {"t": 2 / 3, "u": 1.0}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from knowlab.models.presets import ModelConfig, build_model

    root = tmp_path_factory.mktemp("eval")
    data = make_dataset(root, "ds", people=30, values_per_attribute=4)
    tasks = root / "tasks"
    write_tasks(data, tasks, TaskConfig(tasks="month_mod2,month_later,birth_day,three_to_first", seed=1))
    tok = Dataset(tasks).tokenizer
    cfg = ModelConfig(size="custom", n_layer=1, n_head=2, n_embd=32, context=128)
    model = build_model(cfg, len(tok), tok.eos_token_id, tok.pad_token_id, seed=0)
    return tasks, model, tok


def oracle(monkeypatch, tok, ds, wrong_hint=False):
    """Replace generation by the right continuation of every prompt (optionally a wrong hint)."""
    table = ds.qa.to_pylist()
    truth = {}
    for r in table:
        truth[tuple(tok(r["question"] + " Answer:", add_special_tokens=False)["input_ids"])] = f" {r['answer']}."
        hint = "Nonsense" if wrong_hint else r["hint"]
        truth[tuple(tok(r["question"] + " Hint:", add_special_tokens=False)["input_ids"])] = \
            f" {hint}. Answer: {r['answer']}."

    def fake(model, prompts, max_new, stops, pad, batch_size=0, show_progress=False):
        return [tok(truth[tuple(p)], add_special_tokens=False)["input_ids"] + [tok.eos_token_id] for p in prompts]

    monkeypatch.setattr("knowlab.eval.qa.greedy_generate", fake)


def test_an_oracle_scores_everything_and_a_wrong_hint_only_the_hint(setup, monkeypatch):
    tasks, model, tok = setup
    ds = Dataset(tasks)
    oracle(monkeypatch, tok, ds)
    result, preds = evaluate_tasks(model, tok, ds)
    test = result["splits"]["test"]
    assert test["answer"]["exact"]["mean"] == 1.0 and test["hint"]["exact"]["mean"] == 1.0
    assert test["hint"]["hint"] == {"month_mod2": 1.0, "month_later": 1.0, "mean": 1.0}
    assert set(test["answer"]["exact"]) == {"month_mod2", "month_later", "birth_day", "three_to_first", "mean"}
    assert {p["mode"] for p in preds if p["task"] == "birth_day"} == {"answer"}  # no hint to ask for
    assert 0 < test["baseline"]["month_later"] < 1

    oracle(monkeypatch, tok, ds, wrong_hint=True)
    result, _ = evaluate_tasks(model, tok, ds, modes=("hint",))
    hint = result["splits"]["test"]["hint"]
    assert hint["hint"]["mean"] == 0.0 and hint["exact"]["mean"] == 1.0 and "answer" not in result["splits"]["test"]


def test_real_generation_and_the_cli(setup, tmp_path):
    import torch

    from knowlab.cli import main

    tasks, model, tok = setup
    torch.set_num_threads(1)
    result, preds = evaluate_tasks(model, tok, tasks, splits=("train", "test"), max_rows=3)
    assert set(result["splits"]) == {"train", "test"}
    assert all(0.0 <= v <= 1.0 for v in result["splits"]["test"]["answer"]["exact"].values())
    assert len([p for p in preds if p["split"] == "test" and p["mode"] == "answer"]) == 4 * 3
    beam, _ = evaluate_tasks(model, tok, tasks, max_rows=2, beams=2)
    assert beam["beams"] == 2 and set(beam["splits"]["test"]["hint"]["hint"]) == {"month_mod2", "month_later", "mean"}

    model.save_pretrained(tmp_path / "model")
    tok.save_pretrained(tmp_path / "model")
    out = tmp_path / "ev"
    assert main(["eval", "tasks", str(tmp_path / "model"), "--data", str(tasks), "--out", str(out),
                 "--max-rows", "2", "--device", "cpu"]) == 0
    saved = json.loads((out / "eval_tasks.json").read_text())
    assert saved["tasks"]["names"] == ["month_mod2", "month_later", "birth_day", "three_to_first"]
    assert (out / "eval_tasks.md").read_text().startswith("## test")
    assert main(["eval", "tasks", str(tmp_path / "model"), "--data", str(tasks), "--out", str(out),
                 "--modes", "answer,cot"]) == 2


def test_a_plain_dataset_is_not_a_task_folder(setup, tmp_path):
    from knowlab.errors import KnowlabError

    tasks, model, tok = setup
    with pytest.raises(KnowlabError, match="not a task folder"):
        eval_tasks.task_rows(Dataset(tasks.parent / "ds"))
