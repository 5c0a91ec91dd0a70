"""Kill -9 in the middle of finetuning, resume, and get bit-identical weights on CPU."""

from __future__ import annotations

import json
import sys

import pytest
from conftest import kill_after_checkpoint
import torch
from safetensors.torch import load_file

from knowlab.config import from_dict, parse_overrides
from knowlab.data.dataset import Dataset
from knowlab.errors import KnowlabError
from knowlab.models.presets import ModelConfig, build_model
from knowlab.train import checkpoint as ckpt
from knowlab.train.distributed import Dist
from knowlab.train.finetune import FinetuneConfig, finetune
from knowlab.io import partial_dir

ARGS = ["steps=30", "batch_size=8", "log_every=1", "checkpoint_every=5", "keep_last=2", "final_eval=false",
        "threads=1", "lora.r=2", "lora.embedding_r=4", "lora_lr=3e-3", "seed=3"]


@pytest.fixture(scope="module")
def base_model(tiny_dataset, tmp_path_factory):
    tok = Dataset(tiny_dataset).tokenizer
    cfg = ModelConfig(size="custom", n_layer=2, n_head=2, n_embd=32, context=128)
    folder = tmp_path_factory.mktemp("base") / "model"
    build_model(cfg, len(tok), tok.eos_token_id, tok.pad_token_id, seed=0).save_pretrained(folder)
    return folder


def _cfg(*extra: str) -> FinetuneConfig:
    return from_dict(FinetuneConfig, {}, parse_overrides([*ARGS, *extra]))


@pytest.mark.parametrize("method", ["lora", "full"])
def test_sigkill_then_resume_is_bit_identical(tiny_dataset, base_model, tmp_path, method):
    run = tmp_path / "killed"
    argv = [sys.executable, "-m", "knowlab.cli", "train", "finetune", "--model", str(base_model),
            "--data", str(tiny_dataset), "--out", str(run), *ARGS, f"method={method}"]
    kill_after_checkpoint(argv, partial_dir(run))
    assert not run.exists(), "the run finished before it could be killed"
    assert ckpt.latest(partial_dir(run) / "checkpoints") is not None

    ref = tmp_path / "ref"
    finetune(_cfg(f"method={method}"), base_model, tiny_dataset, ref)
    finetune(_cfg(f"method={method}"), base_model, tiny_dataset, run)  # resume="auto"
    assert not partial_dir(run).exists()
    a = load_file(str(run / "model" / "model.safetensors"))
    b = load_file(str(ref / "model" / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    rows = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    ref_rows = [json.loads(ln) for ln in (ref / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 31))  # lines logged after the checkpoint are redone once
    assert [r["loss"] for r in rows] == [r["loss"] for r in ref_rows]
    assert all("elapsed" in r and "elapsed_s" not in r for r in rows)  # pretraining's schema


def test_resume_refuses_another_config_and_never(tiny_dataset, base_model, tmp_path):
    out = tmp_path / "run"
    work = partial_dir(out)
    cfg = _cfg("steps=5", "checkpoint_every=4")
    finetune(cfg, base_model, tiny_dataset, out)
    assert not work.exists() and (out / "model").is_dir()  # finished: checkpoints are gone
    assert len([ln for ln in (out / "metrics.jsonl").read_text().splitlines()]) == 5

    # What a killed run of another config leaves: a checkpoint and its identity.
    (work / "checkpoints").mkdir(parents=True)
    model = build_model(ModelConfig(size="custom", n_layer=2, n_head=2, n_embd=32, context=128), 10, 0, 0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    ckpt.save(work / "checkpoints", 5, model, opt, sched, {}, Dist())
    (work / "identity.json").write_text(json.dumps({"config": {"steps": 1}, "base_model": "", "data": ""}))
    with pytest.raises(KnowlabError, match="different"):
        finetune(_cfg(), base_model, tiny_dataset, out, overwrite=True)
    with pytest.raises(KnowlabError, match="unfinished finetune"):
        finetune(_cfg(), base_model, tiny_dataset, out, overwrite=True, resume="never")
    with pytest.raises(KnowlabError, match="checkpoint_every"):
        _cfg("checkpoint_every=-1")
