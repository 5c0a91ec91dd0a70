"""The pretraining loop end to end on a tiny model: loss, files, HF export, hooks, errors."""

from __future__ import annotations

import json

import pytest
import torch

from knowlab.config import from_dict
from knowlab.errors import KnowlabError
from knowlab.train.config import PretrainConfig
from knowlab.models.runtime import load_model
from knowlab.train.pretrain import pretrain

TINY = {
    "model": {"arch": "gpt2-rotary", "size": "custom", "n_layer": 2, "n_head": 2, "n_embd": 32, "context": 64},
    "optim": {"lr": 3e-3, "warmup_steps": 5},
    "steps": 30, "batch": 8, "seed": 0, "threads": 1, "log_every": 5, "checkpoint_every": 0,
}


def tiny_cfg(**overrides) -> PretrainConfig:
    return from_dict(PretrainConfig, TINY, overrides)


def _lines(run):
    return [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]


def test_tiny_run_learns_and_exports(tiny_dataset, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    probe = torch.arange(3, 40)[None]
    seen = {}

    def hook(step, model, tokenizer):
        assert not model.training and not torch.is_grad_enabled()
        seen[step] = model(input_ids=probe).logits.clone()
        return {"probe_mean": float(seen[step].mean())}

    run = pretrain(tiny_cfg(eval_every=10), tiny_dataset, tmp_path / "run", hooks=[hook], show_progress=False)
    lines = _lines(run)
    train = [ln for ln in lines if "loss" in ln]
    assert [ln["step"] for ln in train] == [5, 10, 15, 20, 25, 30]
    assert {"step", "loss", "lr", "tokens", "tokens_per_s", "elapsed"} <= set(train[0])
    assert train[-1]["tokens"] == 30 * 8 * 64
    assert train[-1]["loss"] < train[0]["loss"] - 0.5
    evals = [ln for ln in lines if "probe_mean" in ln]
    assert [ln["step"] for ln in evals] == [10, 20, 30] and sorted(seen) == [10, 20, 30]

    meta = json.loads((run / "run.json").read_text())
    assert meta["config"]["model"]["n_layer"] == 2 and meta["seeds"] == {"seed": 0}
    assert "code_version" in meta
    done = json.loads((run / "DONE").read_text())
    assert done["step"] == 30

    model = AutoModelForCausalLM.from_pretrained(str(run / "model"), local_files_only=True).eval()
    tok = AutoTokenizer.from_pretrained(str(run / "model"), local_files_only=True)
    assert len(tok) == model.config.vocab_size
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=probe).logits, seen[30], rtol=0, atol=1e-6)
    loaded = load_model(run, device="cpu")
    assert loaded.config.num_hidden_layers == 2


def test_grad_accumulation_matches_full_batch(tiny_dataset, tmp_path):
    a = pretrain(tiny_cfg(steps=5, log_every=1), tiny_dataset, tmp_path / "a", show_progress=False)
    b = pretrain(tiny_cfg(steps=5, log_every=1, micro_batch=2), tiny_dataset, tmp_path / "b", show_progress=False)
    la = [ln["loss"] for ln in _lines(a)]
    lb = [ln["loss"] for ln in _lines(b)]
    assert la == pytest.approx(lb, rel=1e-4)


def test_mixed_training_runs(tiny_dataset, tmp_path):
    run = pretrain(tiny_cfg(steps=6, qa_ratio=0.5), tiny_dataset, tmp_path / "mixed", show_progress=False)
    assert (run / "DONE").is_file()


def test_resume_rules(tiny_dataset, tmp_path):
    run = pretrain(tiny_cfg(steps=4), tiny_dataset, tmp_path / "r", show_progress=False)
    before = (run / "metrics.jsonl").read_text()
    pretrain(tiny_cfg(steps=4), tiny_dataset, run, show_progress=False)  # finished: returned as is
    assert (run / "metrics.jsonl").read_text() == before
    with pytest.raises(KnowlabError, match="already holds a run"):
        pretrain(tiny_cfg(steps=4), tiny_dataset, run, resume="never")
    with pytest.raises(KnowlabError, match="different 'steps'"):
        pretrain(tiny_cfg(steps=8), tiny_dataset, run)
    with pytest.raises(KnowlabError, match="not a complete checkpoint"):
        pretrain(tiny_cfg(steps=4), tiny_dataset, tmp_path / "x", resume=str(tmp_path / "nope"))


def test_bad_config_and_data_are_knowlab_errors(tmp_path):
    from knowlab.train.cli import load_pretrain_config

    for bad in (["bogus=1"], ["model.bogus=1"], ["precision=fp8"], ["steps=abc"], ["batch=0"], ["qa_ratio=2"]):
        with pytest.raises(KnowlabError):
            load_pretrain_config("tiny", None, bad)
    with pytest.raises(KnowlabError):
        load_pretrain_config("nonexistent")
    with pytest.raises(KnowlabError, match="not a knowlab dataset"):
        pretrain(tiny_cfg(), tmp_path, tmp_path / "run")
    with pytest.raises(KnowlabError, match="divisible"):
        tiny_cfg(micro_batch=3).per_rank(1)


def test_presets_load():
    from knowlab.train.cli import load_pretrain_config

    tiny = load_pretrain_config("tiny")
    assert (tiny.model.shape(), tiny.model.context, tiny.batch, tiny.steps) == ((4, 4, 128), 128, 32, 1500)
    quick = load_pretrain_config("gpu-quick")
    assert (quick.model.shape(), quick.model.context, quick.batch, quick.precision, quick.compile) == ((6, 6, 384), 256, 128, "bf16", True)
    paper = load_pretrain_config("paper", overrides=["qa_ratio=0.8"])
    # the paper's budget is its ~540 exposures per person; steps follow the dataset (train/budget.py)
    assert (paper.model.shape(), paper.model.context, paper.batch, paper.exposures, paper.steps,
            paper.optim.warmup_steps) == ((12, 12, 768), 512, 96, 540, 0, 1000)
    assert paper.qa_ratio == 0.8 and paper.optim.eps == 1e-6 and paper.optim.weight_decay == 0.1


@pytest.mark.parametrize("argv, match", [
    (["--data", "{tmp}/missing", "--out", "{tmp}/run", "--preset", "tiny"], "no such dataset folder"),
    (["--data", "{data}", "--out", "{tmp}/run", "--preset", "tiny", "nope=1"], "unknown config key 'nope'"),
    (["--data", "{data}", "--out", "{tmp}/run", "--preset", "huge"], "unknown pretrain preset"),
    (["--data", "{data}", "--out", "{tmp}/run", "steps"], "key=value"),
])
def test_cli_bad_input_is_one_line_exit_2(tiny_dataset, tmp_path, capsys, argv, match):
    from knowlab.cli import main

    argv = [a.format(tmp=tmp_path, data=tiny_dataset) for a in argv]
    assert main(["train", "pretrain", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("knowlab: error:") and match in err
