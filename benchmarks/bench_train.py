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


def ours(cfg, data: Path, root: Path, skip: int) -> tuple[float, float]:
    """(wall, cpu) tokens/s of knowlab's loop between step `skip` and the end.

    A no-op evaluation hook at step `skip` and at the end reads both clocks (process CPU time is
    what a shared, busy machine distorts least).
    """
    from knowlab.config import replace
    from knowlab.train.pretrain import pretrain

    marks: dict[int, tuple[float, float]] = {}

    def clock(step, model, tokenizer):
        marks[step] = (time.perf_counter(), time.process_time())
        return {}

    run = root / f"ours-{time.monotonic_ns()}"
    pretrain(replace(cfg, eval_every=skip), data, run, hooks=[clock], show_progress=False)
    shutil.rmtree(run, ignore_errors=True)
    return _rates(marks, skip, cfg)


def _rates(marks, skip: int, cfg) -> tuple[float, float]:
    tokens = (cfg.steps - skip) * cfg.batch * cfg.model.context
    (w0, c0), (w1, c1) = marks[skip], marks[cfg.steps]
    return tokens / (w1 - w0), tokens / (c1 - c0)


def hf_trainer(cfg, data: Path, root: Path, skip: int, callbacks=()) -> tuple[float, float]:
    """(wall, cpu) tokens/s of transformers.Trainer on the same model init, windows and optimizer.

    `callbacks` are extra TrainerCallbacks (scripts/gpu_check.py reads the clock through one).
    """
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
    marks: dict[int, tuple[float, float]] = {}

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if torch.cuda.is_available() and state.global_step in (skip, cfg.steps):
                torch.cuda.synchronize()  # the step's kernels are queued, not done, when it returns
            marks[state.global_step] = (time.perf_counter(), time.process_time())

    o = cfg.optim
    args = TrainingArguments(
        output_dir=str(root / "hf"), per_device_train_batch_size=cfg.batch, max_steps=cfg.steps,
        learning_rate=o.lr, weight_decay=o.weight_decay, adam_beta1=o.beta1, adam_beta2=o.beta2,
        adam_epsilon=o.eps, max_grad_norm=o.grad_clip, warmup_steps=o.warmup_steps,
        lr_scheduler_type="cosine", logging_steps=cfg.log_every, save_strategy="no", report_to=[],
        use_cpu=not torch.cuda.is_available(), dataloader_num_workers=0, disable_tqdm=True, seed=cfg.seed,
        bf16=cfg.precision == "bf16",
    )
    Trainer(model=model, args=args, train_dataset=examples, callbacks=[Clock(), *callbacks]).train()
    shutil.rmtree(root / "hf", ignore_errors=True)
    return _rates(marks, skip, cfg)


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
        runs: dict[str, list[tuple[float, float]]] = {"knowlab": [], "hf_trainer": []}
        for _ in range(args.repeats):
            runs["knowlab"].append(ours(cfg, data, root, skip))
            runs["hf_trainer"].append(hf_trainer(cfg, data, root, skip))
            (aw, ac), (bw, bc) = runs["knowlab"][-1], runs["hf_trainer"][-1]
            print(f"  knowlab {aw:,.0f} tok/s wall, {ac:,.0f} per CPU-second | "
                  f"HF Trainer {bw:,.0f} wall, {bc:,.0f} per CPU-second", file=sys.stderr)
        best = {k: (max(w for w, _ in v), max(c for _, c in v)) for k, v in runs.items()}
        return {"device": "cpu", "cpu": _cpu_name(), "cores": os.cpu_count(), "threads": torch.get_num_threads(),
                "preset": "tiny", "vocab": args.vocab, "steps": args.steps, "measured_steps": args.steps - skip,
                "batch": cfg.batch, "context": cfg.model.context,
                "knowlab_tokens_per_s": round(best["knowlab"][0]), "hf_trainer_tokens_per_s": round(best["hf_trainer"][0]),
                "ratio_wall": round(best["knowlab"][0] / best["hf_trainer"][0], 3),
                "knowlab_tokens_per_cpu_s": round(best["knowlab"][1]), "hf_trainer_tokens_per_cpu_s": round(best["hf_trainer"][1]),
                "ratio_cpu": round(best["knowlab"][1] / best["hf_trainer"][1], 3),
                "runs": {k: [[round(w), round(c)] for w, c in v] for k, v in runs.items()},
                "load_average": os.getloadavg()}
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
        tps, _ = ours(cfg, data, root, skip)
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
