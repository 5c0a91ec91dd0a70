"""torchrun with 2 CPU processes (gloo) trains exactly like one process at the same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from knowlab.config import from_dict, parse_overrides
from knowlab.train.config import PretrainConfig
from knowlab.train.pretrain import pretrain

ARGS = ["model.size=custom", "model.n_layer=2", "model.n_head=2", "model.n_embd=32", "model.context=64",
        "batch=8", "steps=10", "optim.warmup_steps=3", "optim.lr=3e-3", "seed=2", "threads=1",
        "log_every=1", "checkpoint_every=5", "qa_ratio=0.3"]


def _losses(run) -> list[float]:
    return [json.loads(ln)["loss"] for ln in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def single_run(tiny_dataset, tmp_path_factory):
    cfg = from_dict(PretrainConfig, {}, parse_overrides(ARGS))
    return pretrain(cfg, tiny_dataset, tmp_path_factory.mktemp("single") / "run", show_progress=False)


@pytest.mark.parametrize("parallel", ["ddp", pytest.param("fsdp", marks=pytest.mark.slow)])
def test_two_processes_match_one(tiny_dataset, single_run, tmp_path, parallel):
    run = tmp_path / parallel
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "knowlab.cli", "train", "pretrain", "--data", str(tiny_dataset), "--out", str(run),
           "--no-progress", *ARGS, f"parallel={parallel}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 process(es)" in done.stderr
    assert json.loads((run / "run.json").read_text())["world_size"] == 2
    assert _losses(run) == pytest.approx(_losses(single_run), rel=1e-4)
    a = load_file(str(run / "model" / "model.safetensors"))
    b = load_file(str(single_run / "model" / "model.safetensors"))
    for key in b:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-5)
    assert (run / "checkpoints" / "step-0000005" / "COMPLETE").is_file()  # rank 0 wrote it, once
