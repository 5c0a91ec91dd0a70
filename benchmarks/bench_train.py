"""Training throughput: knowlab's loop against a plain HF `Trainer`, and MFU on a GPU.

CPU: the `tiny` preset (4 x 128 gpt2-rotary, context 128, batch 32) on a generated bioS
dataset, our `pretrain` loop and `transformers.Trainer` side by side in one process, on the same
model initialisation, the same windows and the same optimizer settings, alternating runs so
that background load hits both alike. Reports tokens/s of each and the ratio (goal >= 1.3).

CUDA: the `small` preset (12 x 768) at context 512 in bf16 (compile on), tokens/s and
MFU = tokens/s x (6 x params + 12 x layers x width x context) / peak (989.5 TFLOP/s for an
H100's dense bf16).

    python benchmarks/bench_train.py [--steps 60] [--repeats 2] [--threads 2] [--people 500]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

PEAK = {"H100": 989.5e12, "H200": 989.5e12, "A100": 312e12}


def _dataset(root: Path, people: int, vocab: int) -> Path:
    from knowlab.config import from_dict
    from knowlab.data.config import DataConfig
    from knowlab.data.dataset import write_dataset

    out = root / "data"
    write_dataset(from_dict(DataConfig, {"people": people, "variant": "single", "vocab_size": vocab}), out)
    return out


def ours(cfg, data: Path, root: Path, skip: int) -> float:
    """tokens/s of knowlab's loop, from its metrics.jsonl, skipping the first `skip` steps."""
    from knowlab.train.pretrain import pretrain

    run = root / f"ours-{time.monotonic_ns()}"
    pretrain(cfg, data, run, show_progress=False)
    lines = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines() if '"loss"' in ln]
    lines = [ln for ln in lines if ln["step"] > skip]
    tokens = (lines[-1]["step"] - skip) * cfg.batch * cfg.model.context
    elapsed = lines[-1]["elapsed"] - _elapsed_at(run, skip)
    shutil.rmtree(run, ignore_errors=True)
    return tokens / elapsed


def _elapsed_at(run: Path, step: int) -> float:
    for ln in (run / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(ln)
        if rec["step"] == step and "loss" in rec:
            return rec["elapsed"]
    raise ValueError(f"no metrics line at step {step}")


def hf_trainer(cfg, data: Path, root: Path, skip: int) -> float:
    """tokens/s of transformers.Trainer on the same model init, windows and optimizer settings."""
    from transformers import Trainer, TrainerCallback, TrainingArguments

    from knowlab.data.dataset import Dataset
    from knowlab.models.presets import build_model
    from knowlab.train.packing import build_stream

    ds = Dataset(data)
    tok = ds.tokenizer
    stream = build_stream(ds, cfg.model.context, cfg.seed)
    windows = torch.from_numpy(stream.global_batch(0, cfg.batch * cfg.steps)[0][:, :-1].copy())
    examples = [{"input_ids": w, "labels": w} for w in windows]
    model = build_model(cfg.model, len(tok), tok.eos_token_id, tok.pad_token_id, seed=cfg.seed)
    marks: dict[int, float] = {}

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            marks[state.global_step] = time.perf_counter()

    o = cfg.optim
    args = TrainingArguments(
        output_dir=str(root / "hf"), per_device_train_batch_size=cfg.batch, max_steps=cfg.steps,
        learning_rate=o.lr, weight_decay=o.weight_decay, adam_beta1=o.beta1, adam_beta2=o.beta2,
        adam_epsilon=o.eps, max_grad_norm=o.grad_clip, warmup_steps=o.warmup_steps,
        lr_scheduler_type="cosine", logging_steps=cfg.log_every, save_strategy="no", report_to=[],
        use_cpu=not torch.cuda.is_available(), dataloader_num_workers=0, disable_tqdm=True, seed=cfg.seed,
        bf16=cfg.precision == "bf16",
    )
    Trainer(model=model, args=args, train_dataset=examples, callbacks=[Clock()]).train()
    shutil.rmtree(root / "hf", ignore_errors=True)
    return (cfg.steps - skip) * cfg.batch * cfg.model.context / (marks[cfg.steps] - marks[skip])


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_bench(args) -> dict:
    from knowlab.train.cli import load_pretrain_config

    root = Path(tempfile.mkdtemp(prefix="knowlab-bench-"))
    try:
        data = _dataset(root, args.people, args.vocab)
        cfg = load_pretrain_config("tiny", overrides=[f"steps={args.steps}", "log_every=10", "checkpoint_every=0",
                                                      f"threads={args.threads}", "device=cpu"])
        if args.threads:
            torch.set_num_threads(args.threads)
        skip = 10
        a, b = [], []
        for _ in range(args.repeats):
            a.append(ours(cfg, data, root, skip))
            b.append(hf_trainer(cfg, data, root, skip))
            print(f"  knowlab {a[-1]:,.0f} tok/s   HF Trainer {b[-1]:,.0f} tok/s", file=sys.stderr)
        best_a, best_b = max(a), max(b)
        return {"device": "cpu", "cpu": _cpu_name(), "cores": os.cpu_count(), "threads": torch.get_num_threads(),
                "preset": "tiny", "vocab": args.vocab, "steps": args.steps, "batch": cfg.batch, "context": cfg.model.context,
                "knowlab_tokens_per_s": round(best_a), "hf_trainer_tokens_per_s": round(best_b),
                "ratio": round(best_a / best_b, 3), "runs": {"knowlab": [round(x) for x in a], "hf_trainer": [round(x) for x in b]},
                "median_ratio": round(statistics.median(a) / statistics.median(b), 3)}
    finally:
        shutil.rmtree(root, ignore_errors=True)


def gpu_bench(args) -> dict:
    from knowlab.data.dataset import Dataset
    from knowlab.models.presets import build_model, count_parameters
    from knowlab.train.cli import load_pretrain_config

    root = Path(tempfile.mkdtemp(prefix="knowlab-bench-"))
    try:
        data = _dataset(root, args.people, args.vocab)
        cfg = load_pretrain_config("paper", overrides=[f"steps={args.steps}", "log_every=10", "checkpoint_every=0",
                                                       f"batch={args.gpu_batch}", "precision=bf16", "compile=true",
                                                       "device=cuda"])
        skip = 20  # compile and warm-up
        tps = ours(cfg, data, root, skip)
        tok = Dataset(data).tokenizer
        with torch.device("meta"):
            params = count_parameters(build_model(cfg.model, len(tok), tok.eos_token_id), non_embedding=False)
        n_layer, _, width = cfg.model.shape()
        flops_per_token = 6 * params + 12 * n_layer * width * cfg.model.context
        name = torch.cuda.get_device_name(0)
        peak = next((v for k, v in PEAK.items() if k in name), PEAK["H100"])
        return {"device": name, "preset": "paper (small, 12x768)", "context": cfg.model.context, "batch": cfg.batch,
                "vocab": len(tok), "params": params, "tokens_per_s": round(tps),
                "mfu": round(tps * flops_per_token / peak, 4), "peak_flops": peak}
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--people", type=int, default=500)
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--gpu-batch", type=int, default=32)
    ap.add_argument("--skip-cpu", action="store_true")
    args = ap.parse_args()
    results = {}
    if not args.skip_cpu:
        results["cpu"] = cpu_bench(args)
    if torch.cuda.is_available():
        results["cuda"] = gpu_bench(args)
    else:
        results["cuda"] = "skipped: no CUDA device"
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
