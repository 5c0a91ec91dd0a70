"""The finetuning loop, checkpointed so that a killed run resumes where it stopped.

The paper's finetune is 50,000 steps; without checkpoints a kill loses all of them. While a run
trains, its progress lives in a partial folder next to OUT, `.OUT.partial/`:
    checkpoints/   step-NNNNNNN/ every `checkpoint_every` steps, the last `keep_last` (checkpoint.py)
    metrics.jsonl  the log so far
    identity.json  what the run is of (config, base model, data), checked before resuming
OUT itself still appears whole at the end (io.atomic_dir), and the partial folder goes then.

A checkpoint holds the weights (LoRA's included), optimizer, scheduler, data order, RNG states,
and the loss being averaged for the next log line, so a run killed at any moment and resumed
(`resume="auto"`) ends with the same weights, bit for bit on CPU, and the same log, as a run
never killed.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import torch

from knowlab.errors import KnowlabError
from knowlab.io import write_json_atomic, write_text_atomic
from knowlab.progress import progress
from knowlab.train import checkpoint as ckpt
from knowlab.train.distributed import Dist

# Settings that change how a run is watched or stored, not its weights: a run may resume with
# other values of these.
NON_RESULT_KEYS = ("device", "threads", "log_every", "eval_every", "eval_people", "final_eval",
                   "final_eval_people", "beams", "checkpoint_every", "keep_last")


class Batches:
    """Endless index batches: each epoch a fresh permutation, drawn without replacement. Its
    state (generator and the rest of the current epoch) goes into checkpoints."""

    def __init__(self, n: int, batch_size: int, seed: int):
        self.n, self.batch_size = n, batch_size
        self.gen = torch.Generator().manual_seed(seed)
        self.pending: list[int] = []

    def __iter__(self):
        return self

    def __next__(self) -> list[int]:
        while len(self.pending) < self.batch_size:
            self.pending += torch.randperm(self.n, generator=self.gen).tolist()
        out, self.pending = self.pending[:self.batch_size], self.pending[self.batch_size:]
        return out

    def state_dict(self) -> dict:
        return {"generator": self.gen.get_state(), "pending": list(self.pending)}

    def load_state_dict(self, state: dict) -> None:
        self.gen.set_state(state["generator"])
        self.pending = list(state["pending"])


def resume_point(work: Path, resume: str, identity: dict) -> Path | None:
    """The checkpoint to continue from, or None for a fresh start (which clears `work`).

    resume: "auto" takes the newest complete checkpoint in `work`, "never" refuses a `work`
    that has one, a path names a checkpoint folder."""
    root = work / "checkpoints"
    if resume == "never":
        if ckpt.list_checkpoints(root):
            raise KnowlabError(f"{work} holds checkpoints of an unfinished finetune; use --resume auto to "
                               "continue it, or delete it")
        found = None
    elif resume == "auto":
        found = ckpt.latest(root)
    else:
        found = Path(resume)
        if not ckpt.is_complete(found):
            raise KnowlabError(f"--resume {resume}: not a complete checkpoint folder "
                               "(expected .../checkpoints/step-NNNNNNN)")
    if found is None:
        shutil.rmtree(work, ignore_errors=True)  # pieces of a run killed before its first checkpoint
        return None
    old = json.loads((work / "identity.json").read_text()) if (work / "identity.json").is_file() else None
    new = json.loads(json.dumps(identity))  # as stored: tuples become lists
    if old is not None and old != new:
        what = next(k for k in new if old.get(k) != new[k])
        if what == "config":
            what = next(k for k in new["config"] if old["config"].get(k) != new["config"][k])
        raise KnowlabError(f"{work} holds an unfinished finetune with a different '{what}'; delete it or "
                           "finetune into another --out")
    return found


class Loop:
    """Steps `loss_of(next batch of indices)` to cfg.steps: backward, clip, optimizer and
    scheduler steps, logging, eval hooks and checkpoints."""

    def __init__(self, cfg, model, optimizer, scheduler, params: list, grad_clip: float, device: torch.device,
                 work: Path, order: Batches):
        self.cfg, self.model, self.optimizer, self.scheduler = cfg, model, optimizer, scheduler
        self.params, self.grad_clip, self.device, self.work, self.order = params, grad_clip, device, work, order
        self.d = Dist(device=device)

    def run(self, point: Path | None, identity: dict, loss_of: Callable[[list[int]], torch.Tensor],
            evaluate: Callable[[int], dict] | None, show_progress: bool) -> tuple[float, float]:
        """Train from `point` (a checkpoint) or from scratch; returns (last logged loss, seconds)."""
        cfg, work = self.cfg, self.work
        start, elapsed_before, running, seen, loss_value = 0, 0.0, 0.0, 0, float("nan")
        metrics = work / "metrics.jsonl"
        if point is None:
            work.mkdir(parents=True, exist_ok=True)
            write_json_atomic(work / "identity.json", identity)
            metrics.write_text("")
        else:
            state = ckpt.load(point, self.model, self.optimizer, self.scheduler, self.d)
            start = int(state["step"])
            self.order.load_state_dict(state["stream"])
            extra = state["extra"]
            elapsed_before, running, seen, loss_value = extra["elapsed"], extra["running"], extra["seen"], extra["loss"]
            # The killed run may have logged past its checkpoint; those steps are redone.
            lines = metrics.read_text().splitlines() if metrics.is_file() else []
            write_text_atomic(metrics, "".join(ln + "\n" for ln in lines if _step_of(ln) <= start))
        running_t = torch.tensor(running, dtype=torch.float32, device=self.device)
        t0 = time.time()
        with open(metrics, "a", encoding="utf-8") as log:
            bar = progress(range(start + 1, cfg.steps + 1), desc=f"finetune {cfg.method}", disable=not show_progress)
            for step in bar:
                loss = loss_of(next(self.order))
                loss.backward()
                if self.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip)
                self.optimizer.step()
                self.scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)
                running_t, seen = running_t + loss.detach(), seen + 1  # no GPU sync until a log step
                if step % cfg.log_every == 0 or step == cfg.steps:
                    loss_value = running_t.item() / seen
                    row = {"step": step, "loss": loss_value, "lr": self.scheduler.get_last_lr()[0],
                           "elapsed": round(elapsed_before + time.time() - t0, 3)}
                    log.write(json.dumps(row) + "\n")
                    log.flush()
                    bar.set_postfix(loss=f"{loss_value:.4f}")
                    running_t, seen = torch.zeros((), device=self.device), 0
                if evaluate is not None and (step % cfg.eval_every == 0 or step == cfg.steps):
                    log.write(json.dumps({"step": step, **evaluate(step)}) + "\n")
                    log.flush()
                if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < cfg.steps:
                    extra = {"elapsed": elapsed_before + time.time() - t0, "running": running_t.item(),
                             "seen": seen, "loss": loss_value}
                    ckpt.save(work / "checkpoints", step, self.model, self.optimizer, self.scheduler,
                              self.order.state_dict(), self.d, cfg.keep_last, extra=extra)
        return loss_value, elapsed_before + time.time() - t0


def _step_of(line: str) -> float:
    """Step of a metrics line; a line torn by a kill counts as past any checkpoint."""
    try:
        return json.loads(line)["step"]
    except (ValueError, KeyError, TypeError):
        return float("inf")
