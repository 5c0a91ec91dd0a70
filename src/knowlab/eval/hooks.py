"""Evaluation hooks for training loops (pretraining, mixed training, QA finetuning).

A hook is a callable `(step, model, tokenizer) -> dict[str, float]`, cheap enough to run every
few hundred steps: it measures a fixed random sample of P_train and P_test people (the same
people at every call, so the curves of Figure 1 are comparable across steps). Metrics, means
over the six attributes in [0, 1]:
    bio_first_token.{train,test}   BIO memorisation (first attribute token inside the bios)
    qa_first_token.{train,test}    teacher-forced first answer token after "Answer:"
    qa_exact.{train,test}          whole-answer exact match (greedy generation or mask filling)
How the model answers comes from the model it is handed at each call (eval/scorers.py): a GBERT
fills masks, a GPT generates; the keys are the same, so one pair of hooks serves both, and a
hook can be built before the model exists (pretraining's command line).
With `every=0` (default) a hook evaluates whenever it is called, so the caller's own interval
rules; with `every=N` it evaluates only at steps divisible by N and returns {} otherwise. It runs
under torch.no_grad and leaves the model in the mode it found it in (train mode during training).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from knowlab.data.dataset import Dataset
from knowlab.eval.qa import people_of_split
from knowlab.eval.scorers import scorer_for


class EvalHook:
    name = "eval"

    def __init__(self, data: Dataset, every: int = 0, max_people: int = 200, seed: int = 0,
                 batch_size: int = 0, splits: Sequence[str] = ("train", "test")):
        self.data, self.every, self.batch_size = data, every, batch_size
        self.people = {s: people_of_split(data, s, max_people, seed) for s in splits}
        self.people = {s: p for s, p in self.people.items() if p}

    def due(self, step: int) -> bool:
        return self.every <= 0 or step % self.every == 0

    def __call__(self, step: int, model, tokenizer=None) -> dict[str, float]:
        if not self.due(step):
            return {}
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                return self.measure(model, tokenizer or self.data.tokenizer)
        finally:
            model.train(was_training)

    def measure(self, model, tokenizer) -> dict[str, float]:  # pragma: no cover - abstract
        raise NotImplementedError


class BioHook(EvalHook):
    name = "bio"

    def measure(self, model, tokenizer) -> dict[str, float]:
        scorer = scorer_for(model)
        return {f"bio_first_token.{s}": scorer.bio(model, self.data, s, people, self.batch_size)["mean"]
                for s, people in self.people.items()}


class QAHook(EvalHook):
    name = "qa"

    def measure(self, model, tokenizer) -> dict[str, float]:
        scorer, out = scorer_for(model), {}
        for split, people in self.people.items():
            metrics, _ = scorer.qa(model, tokenizer, self.data, split, people, batch_size=self.batch_size)
            out[f"qa_first_token.{split}"] = metrics["first_token"]["mean"]
            out[f"qa_exact.{split}"] = metrics["exact"]["mean"]
        return out


def make_eval_hooks(data: Dataset | str | Path, every: int = 0, max_people: int = 200, seed: int = 0,
                    batch_size: int = 0, bio: bool = True, qa: bool = True) -> list[EvalHook]:
    """The hooks for Figure 1's curves: BIO memorisation and QA (first token, exact) per split,
    for a causal and a bidirectional model alike."""
    ds = data if isinstance(data, Dataset) else Dataset(data)
    hooks: list[EvalHook] = []
    if bio:
        hooks.append(BioHook(ds, every, max_people, seed, batch_size))
    if qa:
        hooks.append(QAHook(ds, every, max_people, seed, batch_size))
    return hooks


def run_hooks(hooks: Sequence, step: int, model, tokenizer=None) -> dict[str, float]:
    """All hooks' metrics merged into one dict."""
    out: dict[str, float] = {}
    for hook in hooks:
        out.update(hook(step, model, tokenizer))
    return out
