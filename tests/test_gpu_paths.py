"""The code that a GPU run takes, exercised on the CPU: bf16 autocast (pretraining, finetuning,
the QA evaluator), torch.compile, FSDP2 with checkpoint and resume, the fused-AdamW switch, and
the device check script (scripts/gpu-check.sh) in its CPU smoke mode.

What stays GPU-only and is not covered here: NCCL, CUDA kernels' speed, and fused AdamW's CUDA
kernel itself (scripts/gpu-check.sh measures those on a GPU machine; docs/gpu.md).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from knowlab.config import from_dict, parse_overrides
from knowlab.data.dataset import Dataset
from knowlab.train.config import PretrainConfig
from knowlab.train.pretrain import pretrain

REPO = Path(__file__).resolve().parents[1]

TINY = ["model.size=custom", "model.n_layer=2", "model.n_head=2", "model.n_embd=32", "model.context=64",
        "batch=8", "optim.warmup_steps=2", "optim.lr=3e-3", "seed=1", "threads=1", "log_every=1",
        "device=cpu"]


def _cfg(*extra: str) -> PretrainConfig:
    return from_dict(PretrainConfig, {}, parse_overrides([*TINY, *extra]))


def _lines(run: Path) -> list[dict]:
    return [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]


def _losses(run: Path) -> list[float]:
    return [r["loss"] for r in _lines(run) if "loss" in r]


# ---- bf16 autocast --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fp32_run(tiny_dataset, tmp_path_factory):
    cfg = _cfg("steps=6", "checkpoint_every=0", "precision=fp32")
    return pretrain(cfg, tiny_dataset, tmp_path_factory.mktemp("fp32") / "run", show_progress=False)


def test_bf16_pretraining_runs_its_eval_hooks_under_autocast(tiny_dataset, fp32_run, tmp_path, one_thread):
    from knowlab.eval.hooks import make_eval_hooks

    seen: list[torch.dtype] = []

    def dtype_probe(step, model, tokenizer):
        # What a matmul inside the hooks computes in: bf16 only if the autocast reached them.
        x = torch.ones(2, 2)
        seen.append((x @ x).dtype)
        return {}

    hooks = [*make_eval_hooks(tiny_dataset, max_people=6), dtype_probe]
    cfg = _cfg("steps=6", "checkpoint_every=0", "precision=bf16", "eval_every=3")
    run = pretrain(cfg, tiny_dataset, tmp_path / "bf16", hooks=hooks, show_progress=False)

    losses, ref = _losses(run), _losses(fp32_run)
    assert len(losses) == 6 and all(math.isfinite(x) for x in losses)
    # bf16 rounds, but trains the same model: the first step's loss (same init) agrees closely.
    assert losses[0] == pytest.approx(ref[0], rel=2e-2)
    assert losses != ref  # and autocast really ran (fp32 would be bit-identical)
    evals = [r for r in _lines(run) if "qa_exact.test" in r]
    assert [r["step"] for r in evals] == [3, 6]
    for r in evals:
        for key in ("qa_exact.train", "qa_exact.test", "qa_first_token.test", "bio_first_token.train"):
            assert 0.0 <= r[key] <= 1.0, key
    assert seen == [torch.bfloat16, torch.bfloat16]
    # The weights stay fp32 under autocast; the exported model is fp32.
    weights = load_file(str(run / "model" / "model.safetensors"))
    assert {t.dtype for t in weights.values()} == {torch.float32}


@pytest.mark.parametrize("method", ["full", "lora"])
def test_bf16_finetuning_and_its_final_evaluation(tiny_dataset, fp32_run, tmp_path, method, one_thread):
    from knowlab.config import load, preset_path
    from knowlab.train.finetune import FinetuneConfig, finetune

    cfg = load(FinetuneConfig, preset_path("finetune", "tiny"),
               {"method": method, "steps": 3, "batch_size": 8, "log_every": 1, "precision": "bf16",
                "device": "cpu", "final_eval_people": 4, "eval_every": 0, "lora.embedding_r": 4})
    summary = finetune(cfg, fp32_run, tiny_dataset, tmp_path / method)
    assert math.isfinite(summary["final_loss"])
    result = json.loads((tmp_path / method / "eval_qa.json").read_text())
    for split in ("train", "test"):
        assert 0.0 <= result["splits"][split]["exact"]["mean"] <= 1.0
    weights = load_file(str(tmp_path / method / "model" / "model.safetensors"))
    assert {t.dtype for t in weights.values()} == {torch.float32}


def test_qa_evaluator_on_bf16_weights_and_under_autocast(tiny_dataset, fp32_run, one_thread):
    """The GPU evaluator loads bf16 weights (eval CLI) or runs fp32 weights under bf16 autocast
    (training hooks); both on the CPU give valid answers close to fp32's."""
    from knowlab.eval.evaluate import evaluate
    from knowlab.models.runtime import load_model

    ds = Dataset(tiny_dataset)
    fp32 = load_model(fp32_run / "model", device="cpu", dtype="float32")
    ref, ref_preds = evaluate(fp32, ds.tokenizer, ds, splits=("test",), max_people=8)
    bf16 = load_model(fp32_run / "model", device="cpu", dtype="bfloat16")
    assert next(bf16.parameters()).dtype == torch.bfloat16
    got, preds = evaluate(bf16, ds.tokenizer, ds, splits=("test",), max_people=8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        auto, auto_preds = evaluate(fp32, ds.tokenizer, ds, splits=("test",), max_people=8)
    for result, p in ((got, preds), (auto, auto_preds)):
        test = result["splits"]["test"]
        assert test["questions"] == ref["splits"]["test"]["questions"] == len(p)
        for key in ("exact", "first_token", "bio_first_token"):
            assert 0.0 <= test[key]["mean"] <= 1.0
        # Same questions, same order; bf16 rounding may flip a near-tie, not most answers.
        assert [q["answer"] for q in p] == [q["answer"] for q in ref_preds]
        same = sum(a["prediction"] == b["prediction"] for a, b in zip(p, ref_preds))
        assert same >= 0.5 * len(p)


# ---- torch.compile ------------------------------------------------------------------------

def test_compile_with_bf16_trains_like_eager(tiny_dataset, tmp_path, one_thread):
    """The paper preset's combination (compile + bf16) on a 1-layer model: inductor's CPU backend."""
    if not (shutil.which("gcc") or shutil.which("cc") or shutil.which("clang")):
        pytest.skip("torch.compile's inductor backend needs a C compiler (gcc, cc or clang); none on PATH")
    common = ("steps=4", "checkpoint_every=0", "precision=bf16", "model.n_layer=1")
    eager = pretrain(_cfg(*common), tiny_dataset, tmp_path / "eager", show_progress=False)
    compiled = pretrain(_cfg(*common, "compile=true"), tiny_dataset, tmp_path / "compiled", show_progress=False)
    # Fused kernels round differently from eager bf16; the trajectory is the same model's.
    assert _losses(compiled) == pytest.approx(_losses(eager), rel=3e-2)
    a = load_file(str(compiled / "model" / "model.safetensors"))
    b = load_file(str(eager / "model" / "model.safetensors"))
    assert a.keys() == b.keys()  # saved from the plain model: no _orig_mod. prefixes
    for key in b:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=5e-3)


# ---- FSDP2 --------------------------------------------------------------------------------

FSDP_ARGS = [*TINY, "steps=10", "checkpoint_every=5", "keep_last=3", "qa_ratio=0.3"]


def _torchrun(data: Path, out: Path, parallel: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "knowlab.cli", "train", "pretrain", "--data", str(data), "--out", str(out),
           "--resume", "auto", "--no-progress", *FSDP_ARGS, f"parallel={parallel}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _assert_same_weights(a_file: Path, b_file: Path) -> None:
    a, b = load_file(str(a_file)), load_file(str(b_file))
    assert a.keys() == b.keys()
    for key in b:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-5)


def test_fsdp2_checkpoint_and_resume_auto_match_ddp(tiny_dataset, tmp_path):
    ddp, fsdp = tmp_path / "ddp", tmp_path / "fsdp"
    _torchrun(tiny_dataset, ddp, "ddp")
    _torchrun(tiny_dataset, fsdp, "fsdp")
    # The FSDP2 checkpoint holds full (gathered) weights, equal to DDP's at the same step.
    step5 = "checkpoints/step-0000005/model.safetensors"
    _assert_same_weights(fsdp / step5, ddp / step5)
    _assert_same_weights(fsdp / "model" / "model.safetensors", ddp / "model" / "model.safetensors")

    # Take the run back to its step-5 checkpoint, as a kill after it would have left it.
    (fsdp / "DONE").unlink()
    shutil.rmtree(fsdp / "model")
    shutil.rmtree(fsdp / "checkpoints" / "step-0000010", ignore_errors=True)
    first = (fsdp / "metrics.jsonl").read_text()
    done = _torchrun(tiny_dataset, fsdp, "fsdp")
    assert "resuming at step 5" in done.stderr
    meta = json.loads((fsdp / "run.json").read_text())
    assert meta["resumes"][-1]["step"] == 5 and meta["world_size"] == 2
    _assert_same_weights(fsdp / "model" / "model.safetensors", ddp / "model" / "model.safetensors")
    assert _losses(fsdp) == pytest.approx([json.loads(x)["loss"] for x in first.splitlines()], rel=1e-4)
    assert _losses(fsdp) == pytest.approx(_losses(ddp), rel=1e-4)


# ---- fused AdamW ----------------------------------------------------------------------------

def _params(device: str = "cpu") -> list[torch.nn.Parameter]:
    gen = torch.Generator().manual_seed(0)
    return [torch.nn.Parameter(torch.randn(4, 3, generator=gen).to(device)),
            torch.nn.Parameter(torch.randn(3, generator=gen).to(device))]


def test_fused_adamw_steps_like_the_default_or_falls_back():
    from knowlab.train.optim import OptimConfig, build_optimizer

    cfg = OptimConfig(lr=1e-2)
    plain, fused = _params(), _params()
    opt_a = build_optimizer(plain, cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a torch without CPU kernels falls back, with a warning
        opt_b = build_optimizer(fused, cfg, fused=True)
    for step in range(3):
        for ps in (plain, fused):
            for p in ps:
                p.grad = torch.full_like(p, 0.1 * (step + 1))
        opt_a.step()
        opt_b.step()
    for a, b in zip(plain, fused):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert [g["weight_decay"] for g in opt_b.param_groups] == [cfg.weight_decay, 0.0]


def test_fused_adamw_falls_back_where_torch_has_no_kernel():
    from knowlab.train.optim import OptimConfig, build_optimizer, fused_unsupported

    params = _params("meta")  # no fused kernel exists for the meta device
    assert "meta" in fused_unsupported(params)
    with pytest.warns(UserWarning, match="fused AdamW is not available"):
        opt = build_optimizer(params, OptimConfig(), fused=True)
    assert not opt.defaults["fused"]
    assert all(not g["fused"] for g in opt.param_groups)
    assert fused_unsupported([]) is None


# ---- scripts/gpu-check.sh -----------------------------------------------------------------------

def _gpu_check():
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "scripts" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_gpu_check_throughput_and_mfu_arithmetic(tmp_path):
    """The numbers the GPU run reports, from files shaped as its steps write them."""
    gc = _gpu_check()
    cfg = gc.train_config(smoke=False, steps=100)
    assert (cfg.batch, cfg.model.context, cfg.model.shape(), cfg.precision, cfg.compile) == \
        (96, 512, (12, 12, 768), "bf16", True)
    params, fpt = gc.flops_per_token(cfg, 8192)
    assert 90e6 < params < 100e6  # GPT2-small's 85M blocks + an 8,192 x 768 tied embedding
    assert fpt == 6 * params + 12 * 12 * 768 * 512

    work = tmp_path
    (work / "knowlab-run").mkdir()
    info = {"config": {"batch": 96, "precision": "bf16", "compile": True,
                       "model": {"arch": "gpt2-rotary", "size": "small", "context": 512}},
            "vocab": 8192, "params": params, "flops_per_token": fpt, "warmup_steps": 20}
    (work / "train-knowlab.json").write_text(json.dumps(info))
    # Compilation makes the first interval slow; steps 20..40 take 2 s: 20 x 49,152 tokens / 2 s.
    rows = [{"step": s, "loss": 1.0, "elapsed": e} for s, e in ((10, 60.0), (20, 61.0), (30, 62.0), (40, 63.0))]
    (work / "knowlab-run" / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 5')
    summary = {"steps": {}}
    ours = gc.collect_train_knowlab(work, summary)
    assert ours["tokens_per_s"] == pytest.approx(20 * 96 * 512 / 2.0)
    assert ours["mfu"] == pytest.approx(ours["tokens_per_s"] * fpt / 989.5e12, abs=1e-4)
    assert ours["steps_done"] == 40 and ours["first_log_elapsed_s"] == 60.0

    summary["steps"]["train-knowlab"] = {"result": ours}
    (work / "train-hf.json").write_text(json.dumps({"steps": 60, "warmup_steps": 20, "batch": 96, "context": 512}))
    (work / "train-hf.jsonl").write_text("".join(json.dumps({"step": s, "t": t}) + "\n"
                                                 for s, t in ((10, 5.0), (20, 9.0), (40, 13.0))))
    hf = gc.collect_train_hf(work, summary)
    assert hf["tokens_per_s"] == pytest.approx(20 * 96 * 512 / 4.0)
    assert hf["knowlab_over_trainer"] == pytest.approx(2.0)

    (work / "eval.json").write_text(json.dumps({"knowlab_answers_per_s": 6000.0}))
    assert gc.collect_eval(work, summary)["paper_test_s"] == 50.0
    assert gc.collect_augmentation(work, summary) == {}  # nothing ran yet: no rows, no crash
    assert gc.collect_probing(work, summary) == {"variant": "multi5+permute+fullname"}
    assert gc.study_model(work / "study-aug", "multi5+permute+fullname") is None


def test_gpu_check_cuts_a_step_at_its_budget_and_keeps_the_summary(tmp_path):
    """A step past its budget is stopped with its whole process group; the summary says `cut`."""
    import time

    gc = _gpu_check()
    summary = gc.Summary(tmp_path, smoke=True, total=60)
    step = gc.Step("train-knowlab", "a.", 3.0, 3.0)  # the child needs longer to import and make its data
    work = tmp_path / "work"
    work.mkdir()
    start = time.time()
    gc.run_step(step, work, summary, deadline=start + 60, smoke=True, poll=0.2)
    s = summary.data["steps"]["train-knowlab"]
    assert s["status"] == "cut" and s["budget_s"] == 3.0
    assert time.time() - start < 20  # stopped, not waited for
    saved = json.loads((tmp_path / "gpu-check.json").read_text())
    assert saved["steps"]["train-knowlab"]["status"] == "cut"
    assert "| train-knowlab | cut |" in (tmp_path / "gpu-check.md").read_text()
    # A step with too little time left is skipped, not started.
    gc.run_step(gc.Step("eval", "b.", 60, 60), work, summary, deadline=time.time() + 1, smoke=True, poll=0.2)
    assert summary.data["steps"]["eval"]["status"] == "skipped"


def test_gpu_check_smoke_runs_every_step(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    env.pop("OUT", None)
    done = subprocess.run(["bash", str(REPO / "scripts" / "gpu-check.sh"), "--smoke", "--work", str(tmp_path / "work"),
                           str(out)], env=env, capture_output=True, text=True, timeout=2500)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((out / "gpu-check.json").read_text())
    assert summary["finished"] and summary["smoke"]
    steps = summary["steps"]
    assert list(steps) == ["train-knowlab", "train-hf", "eval", "augmentation", "probing", "mixed"]
    assert {name: s["status"] for name, s in steps.items()} == dict.fromkeys(steps, "ok")

    train = steps["train-knowlab"]["result"]
    assert train["tokens_per_s"] > 0 and train["mfu"] >= 0 and train["precision"] == "bf16"
    assert steps["train-hf"]["result"]["knowlab_over_trainer"] > 0
    ev = steps["eval"]["result"]
    assert ev["knowlab_answers_per_s"] > 0 and ev["hf_questions"] == 5 and ev["paper_test_s"] > 0
    rows = steps["augmentation"]["result"]["rows"]
    assert set(rows) == {"single", "multi5+permute+fullname"}
    assert rows["multi5+permute+fullname"]["calibration_qa_test"] == 0.942
    for row in rows.values():
        assert 0.0 <= row["qa_test"] <= 1.0 and 0.0 <= row["pretrained_only_qa_test"] <= 1.0
    probed = steps["probing"]["result"]
    assert probed["variant"] == "multi5+permute+fullname" and len(probed["q_probe_by_task"]) == 11
    for key in ("q_probe", "q_probe_baseline", "readout_name_last_layer", "readout_baseline", "qa_test"):
        assert 0.0 <= probed[key] <= 100.0, key
    assert probed["qa_test"] == round(100 * rows["multi5+permute+fullname"]["qa_test"], 1)
    points = steps["mixed"]["result"]["points"]
    assert set(points) == {"40", "80"}
    for p in points.values():
        assert 0.0 <= p["qa_test"] <= 1.0 and p["qa_test_curve"]

    md = (out / "gpu-check.md").read_text()
    assert "CPU smoke run" in md
    for name in steps:
        assert f"| {name} | ok |" in md
    assert "==== augmentation ====" in (out / "gpu-check.log").read_text()
