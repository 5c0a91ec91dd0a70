"""The final evaluation of a model: QA exact match, QA first-token accuracy and BIO memorisation
per split, each {attribute: accuracy in [0, 1], "mean": ...}.

How the model answers (generation or mask filling) comes from the model (eval/scorers.py), so
`knowlab eval qa`, finetuning's final evaluation and the tests share this one function.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from knowlab.data.dataset import Dataset
from knowlab.eval.qa import people_of_split
from knowlab.eval.scorers import scorer_for


def evaluate(model, tokenizer, data: Dataset | str | Path, splits: Sequence[str] = ("test",), beams: int = 1,
             batch_size: int = 0, max_people: int | None = None, bio: bool = True, seed: int = 0,
             show_progress: bool = False) -> tuple[dict, list[dict]]:
    """QA exact match, QA first-token accuracy and BIO memorisation for each split.

    Returns (result, predictions); `result["splits"][split]` holds {"exact", "first_token",
    "bio_first_token"} each as {attribute: accuracy in [0, 1], "mean": ...}. A mask-filling
    model ignores `beams` and says so in the result ("decoding": "mask filling", "beams": 1).
    """
    ds = data if isinstance(data, Dataset) else Dataset(data)
    scorer = scorer_for(model)
    was_training = model.training
    model.eval()
    result: dict = {"data": str(ds.path), **scorer.settings(ds, beams),
                    "max_people": max_people, "seed": seed, "splits": {}}
    predictions: list[dict] = []
    try:
        for split in splits:
            people = people_of_split(ds, split, max_people, seed)
            metrics, preds = scorer.qa(model, tokenizer, ds, split, people, beams, batch_size, show_progress)
            if bio:
                metrics["bio_first_token"] = scorer.bio(model, ds, split, people, batch_size)
            result["splits"][split] = metrics
            predictions.extend(preds)
    finally:
        model.train(was_training)
    return result, predictions
