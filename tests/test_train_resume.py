"""Kill -9 in the middle of training, resume, and get bit-identical weights on CPU."""

from __future__ import annotations

import json
import sys

import pytest
from conftest import kill_after_checkpoint
import torch
from safetensors.torch import load_file

from knowlab.config import from_dict
from knowlab.errors import KnowlabError
from knowlab.train import checkpoint as ckpt
from knowlab.train.config import PretrainConfig
from knowlab.train.distributed import Dist
from knowlab.train.pretrain import pretrain

ARGS = ["model.size=custom", "model.n_layer=2", "model.n_head=2", "model.n_embd=32", "model.context=64",
        "batch=8", "steps=40", "optim.warmup_steps=5", "optim.lr=3e-3", "seed=1", "threads=1",
        "log_every=1", "checkpoint_every=5", "keep_last=2"]


def _cfg() -> PretrainConfig:
    from knowlab.config import parse_overrides

    return from_dict(PretrainConfig, {}, parse_overrides(ARGS))


def _cli(data, out, *extra) -> list[str]:
    return [sys.executable, "-m", "knowlab.cli", "train", "pretrain", "--data", str(data), "--out", str(out),
            "--no-progress", *extra, *ARGS]


def test_sigkill_then_resume_is_bit_identical(tiny_dataset, tmp_path):
    run = tmp_path / "killed"
    kill_after_checkpoint(_cli(tiny_dataset, run), run)
    assert not (run / "DONE").exists(), "the run finished before it could be killed"
    killed_at = ckpt.latest(run / "checkpoints")

    # The reference: the same run, uninterrupted, in this process.
    ref = pretrain(_cfg(), tiny_dataset, tmp_path / "ref", show_progress=False)

    # Resume in this process too (a second interpreter start costs more than the training).
    pretrain(_cfg(), tiny_dataset, run, resume="auto", show_progress=False)
    meta = json.loads((run / "run.json").read_text())
    assert meta["resumes"][0]["step"] == int(killed_at.name.split("-")[1])
    a = load_file(str(run / "model" / "model.safetensors"))
    b = load_file(str(ref / "model" / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    steps = [json.loads(ln)["step"] for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 41))  # lines logged after the checkpoint by the killed run are redone once
    losses = [json.loads(ln)["loss"] for ln in (run / "metrics.jsonl").read_text().splitlines()]
    ref_losses = [json.loads(ln)["loss"] for ln in (ref / "metrics.jsonl").read_text().splitlines()]
    assert losses == ref_losses
    assert len(ckpt.list_checkpoints(run / "checkpoints")) <= 2  # keep_last


def test_half_written_checkpoints_are_ignored(tiny_dataset, tmp_path):
    cfg = from_dict(PretrainConfig, {}, {**dict(a.split("=") for a in ARGS), "steps": "12", "keep_last": "5"})
    run = pretrain(cfg, tiny_dataset, tmp_path / "run", show_progress=False)
    root = run / "checkpoints"
    assert [p.name for p in ckpt.list_checkpoints(root)] == ["step-0000005", "step-0000010"]
    # A write killed before its rename, and one on a file system where the folder appeared early.
    (root / ".step-0000015.tmp").mkdir()
    (root / ".step-0000015.tmp" / "model.safetensors").write_bytes(b"partial")
    torn = root / "step-0000015"
    torn.mkdir()
    (torn / "model.safetensors").write_bytes(b"partial")
    assert ckpt.latest(root).name == "step-0000010"
    # resuming from it loads the previous, complete checkpoint and trains on
    (run / "DONE").unlink()
    cfg2 = from_dict(PretrainConfig, {}, {**dict(a.split("=") for a in ARGS), "steps": "12", "keep_last": "5"})
    pretrain(cfg2, tiny_dataset, run, show_progress=False)
    assert (run / "DONE").is_file()
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(ln)["step"] for ln in lines] == list(range(1, 13))


def test_checkpoint_roundtrip_restores_everything(tiny_dataset, tmp_path):
    from knowlab.data.dataset import Dataset
    from knowlab.models.presets import build_model
    from knowlab.train.optim import build_optimizer, build_scheduler

    cfg = _cfg()
    tok = Dataset(tiny_dataset).tokenizer
    model = build_model(cfg.model, len(tok), tok.eos_token_id, tok.pad_token_id, seed=0)
    opt = build_optimizer(model.parameters(), cfg.optim)
    sched = build_scheduler(opt, 10, cfg.optim)
    model(input_ids=torch.arange(10)[None], labels=torch.arange(10)[None]).loss.backward()
    opt.step()
    sched.step()
    d = Dist()
    path = ckpt.save(tmp_path, 1, model, opt, sched, {"bios": {"epoch": 2, "cursor": 7}}, d, keep_last=1)
    ckpt.save(tmp_path, 2, model, opt, sched, {}, d, keep_last=1)
    expected_rand = torch.rand(3)
    assert not path.exists() and ckpt.latest(tmp_path).name == "step-0000002"

    fresh = build_model(cfg.model, len(tok), tok.eos_token_id, tok.pad_token_id, seed=5)
    opt2 = build_optimizer(fresh.parameters(), cfg.optim)
    sched2 = build_scheduler(opt2, 10, cfg.optim)
    state = ckpt.load(ckpt.latest(tmp_path), fresh, opt2, sched2, d)
    assert state["step"] == 2
    assert torch.equal(torch.rand(3), expected_rand)  # RNG states restored
    for (n, p), q in zip(model.named_parameters(), fresh.parameters()):
        assert torch.equal(p, q), n
    assert sched2.last_epoch == sched.last_epoch
    assert torch.equal(opt2.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    assert fresh.get_input_embeddings().weight.data_ptr() == fresh.get_output_embeddings().weight.data_ptr()
    with pytest.raises(KnowlabError):
        ckpt.load(tmp_path / "missing", fresh, opt2, sched2, d)
