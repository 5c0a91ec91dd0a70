"""The pretraining loop: BIO pretraining and mixed (bios + P_train QA) training, causal by
default, or GBERT's whole-word masked LM with objective=mlm (train/mlm.py; only the batch
transform differs: the loss is the same cross-entropy over the labelled positions).

    from knowlab.train.pretrain import pretrain
    pretrain(cfg, "data/single", "runs/single", hooks=[bio_accuracy_hook])

A run folder holds
    run.json         resolved config, code version, seeds, machine, data folder (io.run_metadata)
    metrics.jsonl    one JSON line per log step ({step, loss, lr, tokens, tokens_per_s, elapsed})
                     and per evaluation ({step, elapsed, <hook keys>})
    tb/              TensorBoard scalars, when tensorboard is importable
    checkpoints/     step-NNNNNNN/ (see checkpoint.py), the last `keep_last` of them
    model/           the final model as an HF folder with the tokenizer (safetensors)
    DONE             written last: a run with DONE is complete

A hook is `hook(step, model, tokenizer) -> dict[str, float]`, called every `eval_every` steps
and once at the end, with the plain HF model in eval mode under torch.no_grad (and bf16
autocast when training uses it). Under DDP only rank 0 calls hooks; under FSDP every rank does
(a sharded forward needs all ranks) and rank 0's results are logged.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from knowlab.config import to_dict
from knowlab.errors import KnowlabError
from knowlab.io import atomic_dir, run_metadata, write_json_atomic, write_text_atomic
from knowlab.models.presets import build_model, count_parameters
from knowlab.progress import progress
from knowlab.train import checkpoint as ckpt
from knowlab.train.config import RESULT_KEYS, PretrainConfig
from knowlab.train.distributed import Dist, barrier, broadcast_object, mean, no_sync, setup, teardown, wrap
from knowlab.train.optim import build_optimizer, build_scheduler
from knowlab.train.packing import build_stream

Hook = Callable[[int, torch.nn.Module, object], dict]
DONE = "DONE"


def pretrain(cfg: PretrainConfig, data_dir: str | Path, out_dir: str | Path, hooks: Sequence[Hook] = (),
             resume: str = "auto", show_progress: bool | None = None) -> Path:
    """Train per `cfg` on the dataset folder `data_dir` into the run folder `out_dir`.

    resume: "auto" continues from the newest complete checkpoint in out_dir (a finished run is
    returned as is), "never" refuses a folder that already has checkpoints, a path resumes from
    that checkpoint folder. Returns out_dir. Works the same under torchrun.
    """
    from knowlab.data.dataset import Dataset

    from knowlab.train.budget import resolve

    cfg.validate()
    dataset = Dataset(data_dir)  # KnowlabError when it is not a dataset folder
    # Steps come from the dataset when the budget is in exposures; run.json records both.
    cfg, budget = resolve(cfg, dataset)
    out = Path(out_dir)
    d = setup(cfg.device, cfg.parallel)
    threads, det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    try:
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        if cfg.deterministic:
            import os

            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True)
        # Decided before building anything, so asking for a finished run again is cheap.
        point = broadcast_object(_decide(cfg, out, resume) if d.is_main else None, d)
        if isinstance(point, KnowlabError):  # raised on every rank, so none waits forever
            raise point
        if point == DONE:
            if d.is_main:
                print(f"pretrain: {out} is already complete", file=sys.stderr)
            return out
        return _Trainer(cfg, dataset, out, list(hooks), d, show_progress, budget).run(point)
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(det)
        teardown(d)


def _resume_point(cfg: PretrainConfig, out: Path, resume: str) -> Path | None | str:
    """The checkpoint to continue from, None for a fresh start, or DONE for a finished run."""
    root = out / "checkpoints"
    if resume == "never":
        if (out / DONE).exists() or ckpt.list_checkpoints(root):
            raise KnowlabError(f"{out} already holds a run; use --resume auto to continue it or another --out")
        return None
    if resume == "auto":
        if (out / DONE).exists():
            _check_same(cfg, out)
            return DONE
        found = ckpt.latest(root)
        if found is not None:
            _check_same(cfg, out)
        return found
    path = Path(resume)
    if not ckpt.is_complete(path):
        raise KnowlabError(f"--resume {resume}: not a complete checkpoint folder (expected .../checkpoints/step-NNNNNNN)")
    return path


def _decide(cfg: PretrainConfig, out: Path, resume: str):
    try:
        return _resume_point(cfg, out, resume)
    except KnowlabError as exc:
        return exc


def _check_same(cfg: PretrainConfig, out: Path) -> None:
    meta = out / "run.json"
    if not meta.is_file():
        return
    old = json.loads(meta.read_text()).get("config", {})
    new = to_dict(cfg)
    for key in RESULT_KEYS:
        if key in old and old[key] != new[key]:
            raise KnowlabError(f"{out} was started with a different '{key}' ({old[key]} vs {new[key]}); "
                               "train the new config into another --out")


class _Trainer:
    def __init__(self, cfg: PretrainConfig, dataset, out: Path, hooks: list[Hook], d: Dist, show: bool | None,
                 budget):
        self.cfg, self.dataset, self.out, self.hooks, self.d, self.show = cfg, dataset, out, hooks, d, show
        self.budget = budget
        self.tok = dataset.tokenizer
        dev = d.device
        if dev.type == "cuda":
            torch.set_float32_matmul_precision("high")
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and dev.type == "cuda" and torch.cuda.is_bf16_supported())
        self.autocast_dtype = torch.bfloat16 if bf16 else None

        random.seed(cfg.seed)
        np.random.seed(cfg.seed)
        tok = self.tok
        # The vocabulary is len(tokenizer): added specials (mask, name end) sit past vocab_size.
        self.raw = build_model(cfg.model, len(tok), tok.eos_token_id, tok.pad_token_id, seed=cfg.seed).to(dev)
        self.pad_mask_id = tok.pad_token_id if tok.pad_token_id not in (None, tok.eos_token_id) else None
        self.masker = None
        if cfg.objective == "mlm":  # GBERT: whole-word masking replaces the next-token shift
            from knowlab.train.mlm import WholeWordMasker, check_bidirectional

            check_bidirectional(self.raw)
            self.masker = WholeWordMasker(tok, len(tok), seed=cfg.seed)
        model = self.raw
        if cfg.compile and d.parallel != "fsdp":
            model = torch.compile(model)
        model = wrap(model, d)
        if cfg.compile and d.parallel == "fsdp":
            model = torch.compile(model)
        self.model = model
        self.optimizer = build_optimizer(self.raw.parameters(), cfg.optim, fused=dev.type == "cuda")
        self.scheduler = build_scheduler(self.optimizer, cfg.steps, cfg.optim)
        self.stream = build_stream(dataset, cfg.model.context, cfg.seed, cfg.qa_ratio)
        self.local, self.n_micro = cfg.per_rank(d.world)
        self.tokens_per_step = cfg.batch * cfg.model.context
        self.elapsed_before = 0.0
        self._tb = None

    # ---- helpers ------------------------------------------------------------------------------

    def autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.d.device.type, dtype=self.autocast_dtype)

    def log(self, record: dict) -> None:
        if not self.d.is_main:
            return
        with open(self.out / "metrics.jsonl", "a") as fh:
            fh.write(json.dumps(record) + "\n")
        if self._tb is not None:
            prefix = "train/" if "loss" in record else "eval/"
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)):
                    self._tb.add_scalar(prefix + key, value, record["step"])
            self._tb.flush()

    def _open_logs(self, start: int, resumed_from: Path | None) -> None:
        out = self.out
        out.mkdir(parents=True, exist_ok=True)
        metrics = out / "metrics.jsonl"
        if resumed_from is None:
            metrics.unlink(missing_ok=True)
            meta = run_metadata(to_dict(self.cfg), {"seed": self.cfg.seed})
            meta.update(kind="knowlab-pretrain", world_size=self.d.world, budget=self.budget.to_dict(),
                        data={"path": str(self.dataset.path.resolve()),
                              "bios_sha256": self.dataset.manifest.get("files", {}).get("bios.parquet")})
        else:
            # The killed run may have logged past its last checkpoint; those steps are redone.
            if metrics.is_file():
                keep = [ln for ln in metrics.read_text().splitlines() if _step_of(ln) <= start]
                write_text_atomic(metrics, "".join(ln + "\n" for ln in keep))
            meta = json.loads((out / "run.json").read_text()) if (out / "run.json").is_file() else \
                run_metadata(to_dict(self.cfg), {"seed": self.cfg.seed})
            meta.setdefault("resumes", []).append({"from": str(resumed_from), "step": start, "time": time.time()})
        write_json_atomic(out / "run.json", meta)
        try:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(out / "tb"), purge_step=start if resumed_from else None)
        except ImportError:
            self._tb = None

    def run_hooks(self, step: int, elapsed: float) -> None:
        if not self.hooks:
            return
        if self.d.parallel != "fsdp" and not self.d.is_main:
            barrier(self.d)
            return
        self.raw.eval()
        results: dict = {}
        with torch.no_grad(), self.autocast():
            for hook in self.hooks:
                results.update(hook(step, self.raw, self.tok) or {})
        self.raw.train()
        barrier(self.d)
        self.log({"step": step, "elapsed": round(elapsed, 3), **{k: _num(v) for k, v in results.items()}})

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        windows, _ = self.stream.global_batch(step, self.cfg.batch)
        mine = torch.from_numpy(windows[self.d.rank * self.local : (self.d.rank + 1) * self.local])
        if self.masker is not None:  # MLM: labels sit on the corrupted positions themselves
            x, y = self.masker.for_step(mine[:, :-1], step, self.d.rank)
            return x.to(self.d.device, non_blocking=True), y.to(self.d.device, non_blocking=True)
        if self.d.device.type == "cuda":
            mine = mine.pin_memory().to(self.d.device, non_blocking=True)
        x, y = mine[:, :-1], mine[:, 1:].clone()
        if self.pad_mask_id is not None:  # windows are full, but never learn to predict padding
            y[y == self.pad_mask_id] = -100
        return x, y

    # ---- the loop -----------------------------------------------------------------------------

    def run(self, point: Path | None) -> Path:
        """Train from `point` (a checkpoint folder) or from scratch (None)."""
        cfg, d = self.cfg, self.d
        start = 0
        if point is not None:
            state = ckpt.load(point, self.raw, self.optimizer, self.scheduler, d)
            start = int(state["step"])
            self.stream.load_state_dict(state["stream"])
            self.elapsed_before = float(state.get("extra", {}).get("elapsed", 0.0))
        if d.is_main:
            (self.out / DONE).unlink(missing_ok=True)
            self._open_logs(start, Path(point) if point is not None else None)
            params = count_parameters(self.raw)
            how = f"resuming at step {start}" if start else "from scratch"
            print(f"pretrain: {params / 1e6:.2f}M non-embedding params, {self.budget.describe()}, "
                  f"{self.tokens_per_step:,} tokens a step, {d.world} process(es) on {d.device.type}, {how}",
                  file=sys.stderr)
        barrier(d)

        self.model.train()
        disable = True if not d.is_main else (None if self.show is None else not self.show)
        bar = progress(total=cfg.steps, initial=start, desc="pretrain", disable=disable)
        t0 = time.perf_counter()
        t_log, step_log = t0, start
        loss_acc = torch.zeros((), device=d.device)
        last_loss = math.nan
        micro = self.local // self.n_micro
        sync_owner = self.raw if d.parallel == "fsdp" else self.model  # FSDP2 shards raw in place
        for step in range(start, cfg.steps):
            x, y = self.batch(step)
            for i in range(self.n_micro):
                xb, yb = x[i * micro : (i + 1) * micro], y[i * micro : (i + 1) * micro]
                with no_sync(sync_owner, d, i == self.n_micro - 1):
                    with self.autocast():
                        logits = self.model(input_ids=xb, use_cache=False).logits
                    loss = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), yb.reshape(-1), ignore_index=-100)
                    (loss / self.n_micro).backward()
                loss_acc += loss.detach()
            if cfg.optim.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(self.raw.parameters(), cfg.optim.grad_clip)
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            done = step + 1
            bar.update(1)

            if done % cfg.log_every == 0 or done == cfg.steps:
                # The only host sync of the step, and only on log steps.
                last_loss = mean(loss_acc / (self.n_micro * (done - step_log)), d).item()
                loss_acc.zero_()
                now = time.perf_counter()
                tps = self.tokens_per_step * (done - step_log) / max(now - t_log, 1e-9)
                t_log, step_log = now, done
                elapsed = self.elapsed_before + now - t0
                self.log({"step": done, "loss": round(last_loss, 6), "lr": self.scheduler.get_last_lr()[0],
                          "tokens": done * self.tokens_per_step, "tokens_per_s": round(tps, 1),
                          "elapsed": round(elapsed, 3)})
                bar.set_postfix(loss=f"{last_loss:.4f}", tok_s=f"{tps:,.0f}")
            pause = time.perf_counter()
            if cfg.eval_every and done % cfg.eval_every == 0 and done < cfg.steps:
                self.run_hooks(done, self.elapsed_before + pause - t0)
            if cfg.checkpoint_every and done % cfg.checkpoint_every == 0 and done < cfg.steps:
                ckpt.save(self.out / "checkpoints", done, self.raw, self.optimizer, self.scheduler,
                          self.stream.state_dict(), d, cfg.keep_last,
                          extra={"elapsed": self.elapsed_before + pause - t0})
            t_log += time.perf_counter() - pause  # tokens/s counts training time only
        bar.close()
        elapsed = self.elapsed_before + time.perf_counter() - t0
        self.run_hooks(cfg.steps, elapsed)
        self.export(cfg.steps, last_loss, elapsed)
        return self.out

    def export(self, step: int, loss: float, elapsed: float) -> None:
        """model/ as an HF folder (weights + tokenizer), then DONE; rank 0 writes."""
        state = ckpt.model_state(self.raw, self.d) if self.d.parallel == "fsdp" else None
        if self.d.is_main:
            from transformers.utils import logging as hf_logging

            bars = hf_logging.is_progress_bar_enabled()
            hf_logging.disable_progress_bar()  # a one-shard "Writing model shards" bar is noise
            try:
                with atomic_dir(self.out / "model", overwrite=True) as tmp:
                    tmp.chmod(0o755)  # mkdtemp makes it private; a model folder is meant to be shared
                    if state is None:
                        self.raw.save_pretrained(str(tmp))
                    else:
                        from transformers import AutoModelForCausalLM

                        plain = AutoModelForCausalLM.from_config(self.raw.config)
                        plain.load_state_dict(state)
                        plain.save_pretrained(str(tmp))
                    self.tok.save_pretrained(str(tmp))
            finally:
                if bars:
                    hf_logging.enable_progress_bar()
            if self._tb is not None:
                self._tb.close()
            write_json_atomic(self.out / DONE, {"step": step, "final_loss": loss, "tokens": step * self.tokens_per_step,
                                                "exposures": self.budget.to_dict()["exposures"],
                                                "elapsed": round(elapsed, 3)})
        barrier(self.d)


def _step_of(line: str) -> float:
    """Step of a metrics line; a line torn by a kill counts as past any checkpoint."""
    try:
        return json.loads(line)["step"]
    except (ValueError, KeyError, TypeError):
        return math.inf


def _num(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return value
