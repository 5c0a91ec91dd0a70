"""How a model answers, chosen from the model itself: generation or mask filling.

A causal model (GPT) continues `{question} Answer:` and its BIO memorisation is the
next-token argmax (eval/qa.py, eval/bio.py). A bidirectional GBERT ([P] App. H) cannot
generate: it fills masks in the answer's place (eval/mlm_qa.py). Both score the same way
(eval/scoring.py): exact match compares the delimited answer string with the value, first-token
accuracy the value's first token. Every evaluator (the final `evaluate`, the training hooks)
asks `scorer_for(model)` instead of branching on the architecture or the training objective,
so one code path measures both and their numbers mean the same thing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from knowlab.data.dataset import Dataset
from knowlab.eval.bio import bio_first_token
from knowlab.eval.mlm_qa import bio_masked_first_token, fill_masks, mask_id, mlm_qa_rows, score_fills
from knowlab.eval.qa import evaluate_qa, max_answer_tokens, split_rows
from knowlab.eval.scoring import qa_metrics
from knowlab.models.runtime import is_bidirectional, pad_id, unwrap


class Scorer(Protocol):
    def settings(self, ds: Dataset, beams: int) -> dict:
        """What `evaluate`'s result records about the decoding."""

    def qa(self, model, tokenizer, ds: Dataset, split: str = "test", people: Sequence[int] | None = None,
           beams: int = 1, batch_size: int = 0, show_progress: bool = False) -> tuple[dict, list[dict]]:
        """({"exact", "first_token", "questions", "people"}, one prediction per question)."""

    def bio(self, model, ds: Dataset, split: str | None = None, people: Sequence[int] | None = None,
            batch_size: int = 0) -> dict[str, float]:
        """BIO memorisation: {attribute: first-token accuracy, "mean": ...}."""


class Generation:
    """Causal models: greedy (or beam) continuation of the prompt."""

    def settings(self, ds: Dataset, beams: int) -> dict:
        return {"beams": beams, "max_new_tokens": max_answer_tokens(ds) + 2}

    def qa(self, model, tokenizer, ds: Dataset, split: str = "test", people: Sequence[int] | None = None,
           beams: int = 1, batch_size: int = 0, show_progress: bool = False) -> tuple[dict, list[dict]]:
        return evaluate_qa(model, tokenizer, ds, split, people, beams, batch_size, show_progress)

    def bio(self, model, ds: Dataset, split: str | None = None, people: Sequence[int] | None = None,
            batch_size: int = 0) -> dict[str, float]:
        return bio_first_token(model, ds, split, people, batch_size=batch_size)


class MaskFilling:
    """Bidirectional models: one mask per answer token, all filled in one forward."""

    def settings(self, ds: Dataset, beams: int) -> dict:
        # One forward decides every mask, so there is nothing for beams to search.
        return {"objective": "mlm", "decoding": "mask filling", "beams": 1}

    def qa(self, model, tokenizer, ds: Dataset, split: str = "test", people: Sequence[int] | None = None,
           beams: int = 1, batch_size: int = 0, show_progress: bool = False) -> tuple[dict, list[dict]]:
        ds = ds if isinstance(ds, Dataset) else Dataset(ds)
        rows = split_rows(ds, split, people, mlm_qa_rows)
        mask, eos = mask_id(tokenizer), tokenizer.eos_token_id
        seqs = [[*r["context"], *[mask] * len(r["targets"]), eos] for r in rows]
        fills = fill_masks(model, seqs, mask, pad_id(tokenizer), batch_size, show_progress)
        preds = score_fills(rows, fills, tokenizer, split)
        return qa_metrics(preds), preds

    def bio(self, model, ds: Dataset, split: str | None = None, people: Sequence[int] | None = None,
            batch_size: int = 0) -> dict[str, float]:
        return bio_masked_first_token(model, ds, split, people, batch_size)


def scorer_for(model) -> Scorer:
    """Mask filling for a bidirectional model, generation otherwise.

    Unwrapped first: a DDP or compiled wrapper has no config of its own, and would pass for causal.
    """
    return MaskFilling() if is_bidirectional(unwrap(model)) else Generation()
