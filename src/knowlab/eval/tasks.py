"""Scoring manipulation tasks (Part 3.2) by generation, in the two test-time modes.

Each test row is asked once per mode (see `knowlab.data.tasks` for the marker):
- answer mode: prompt `{question} Answer:`; the answer is delimited as in `eval.scoring`
  (decoded text up to the first "." or newline).
- hint mode (tasks that have a hint): prompt `{question} Hint:`. The hint is the text up to the
  first "."; the answer is what follows, after an optional `Answer:`, up to the next ".".
An answer is right when it exactly matches one of the row's accepted answers (inverse search can
have several people fitting a question); a hint is right when it matches the row's hint exactly
("hint accuracy", NOTES-3.2 pitfall 6). Generation is `eval.qa.greedy_generate`, or
`eval.qa.beam_generate` with beams > 1 (the paper uses 4).

The chance baseline of a task is the share of its most common answer among the scored rows
(the majority class; for month ranking with ties answered "No" it is 1 - 11/24).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import torch

from knowlab.data.dataset import Dataset
from knowlab.data.schema import ANSWER_PREFIX
from knowlab.data.tasks import HINT_PREFIX
from knowlab.errors import KnowlabError
from knowlab.eval.scoring import answer_from_text, cut_at_eos, stop_token_mask

MODES = ("answer", "hint")


def task_rows(ds: Dataset, split: str = "test", max_rows: int = 0, seed: int = 0) -> list[dict]:
    """The rows of `split` (at most `max_rows` per task, a fixed random sample)."""
    if "tasks" not in ds.manifest:
        raise KnowlabError(f"{ds.path}: not a task folder; build one with 'knowlab data tasks'")
    table = ds.qa.filter(pc.equal(ds.qa["split"], split))
    cols = ["task", "family", "person_id", "other_id", "question", "hint", "answer", "accepted"]
    rows = table.select(cols).to_pylist()
    if max_rows:
        rng = np.random.default_rng(seed)
        by_task: dict[str, list[dict]] = {}
        for r in rows:
            by_task.setdefault(r["task"], []).append(r)
        rows = []
        for task_list in by_task.values():
            keep = sorted(rng.choice(len(task_list), size=min(max_rows, len(task_list)), replace=False).tolist())
            rows += [task_list[k] for k in keep]
    return rows


def parse_hint_mode(continuation: str) -> tuple[str, str]:
    """(hint, answer) from a hint-mode continuation (already cut at EOS)."""
    hint, dot, rest = continuation.partition(".")
    if not dot:
        return hint.strip(), ""
    rest = rest.lstrip()
    rest = rest[len(ANSWER_PREFIX.strip()):] if rest.startswith(ANSWER_PREFIX.strip()) else rest
    return hint.strip(), answer_from_text(rest)


def _accuracy(preds: list[dict], key: str) -> dict[str, float]:
    hits: dict[str, list[int]] = {}
    for p in preds:
        if p.get(key) is not None:
            hits.setdefault(p["task"], []).append(int(p[key]))
    out = {t: sum(h) / len(h) for t, h in hits.items()}
    out["mean"] = float(np.mean(list(out.values()))) if out else float("nan")
    return out


def baselines(rows: Sequence[dict]) -> dict[str, float]:
    """Majority-class accuracy per task among `rows`."""
    answers: dict[str, Counter] = {}
    for r in rows:
        answers.setdefault(r["task"], Counter())[r["answer"]] += 1
    return {t: c.most_common(1)[0][1] / sum(c.values()) for t, c in answers.items()}


@torch.no_grad()
def evaluate_tasks(model, tokenizer, ds: Dataset | str | Path, splits: Sequence[str] = ("test",),
                   modes: Sequence[str] = MODES, batch_size: int = 0, max_rows: int = 0, seed: int = 0,
                   beams: int = 1, show_progress: bool = False) -> tuple[dict, list[dict]]:
    """Per-task accuracy of each split and mode: ({"splits": {split: {mode: {...}}}}, predictions).

    result["splits"][split]["answer"]["exact"] and ["hint"]["exact"] map task -> answer accuracy
    (plus "mean" over tasks); ["hint"]["hint"] is the hint accuracy; ["baseline"] the majority class.
    """
    from knowlab.eval import qa
    from knowlab.models.runtime import pad_id, unwrap

    ds = ds if isinstance(ds, Dataset) else Dataset(ds)
    if beams < 1:
        raise KnowlabError(f"beams must be at least 1, got {beams}")

    def generate(prompts, max_new, stops):
        if beams > 1:
            return qa.beam_generate(base, prompts, max_new, stops, pad, beams, batch_size, show_progress)
        return qa.greedy_generate(base, prompts, max_new, stops, pad, batch_size, show_progress)

    bad = [m for m in modes if m not in MODES]
    if bad:
        raise KnowlabError(f"mode '{bad[0]}' is not valid; valid: {', '.join(MODES)}")
    base = unwrap(model)
    vocab = base.get_output_embeddings().weight.shape[0]
    pad = pad_id(tokenizer)
    answer_stops = stop_token_mask(tokenizer, vocab)
    # A hint ends with a period, so hint mode runs on to EOS (or its token budget).
    eos_only = torch.zeros(vocab, dtype=torch.bool)
    eos_only[tokenizer.eos_token_id] = True
    longest = pc.max(pc.subtract(pc.list_value_length(ds.qa["input_ids"]), ds.qa["answer_tok_start"])).as_py()
    was_training = base.training
    base.eval()
    result: dict = {"data": str(ds.path), "tasks": ds.manifest["tasks"], "beams": beams, "splits": {}}
    predictions: list[dict] = []
    try:
        for split in splits:
            rows = task_rows(ds, split, max_rows, seed)
            if not rows:
                raise KnowlabError(f"{ds.path}: no task rows in split '{split}'")
            out: dict = {"rows": len(rows), "baseline": baselines(rows)}
            for mode in modes:
                asked = rows if mode == "answer" else [r for r in rows if r["hint"]]
                if not asked:
                    continue
                marker = ANSWER_PREFIX if mode == "answer" else HINT_PREFIX
                prompts = tokenizer([r["question"] + marker for r in asked], add_special_tokens=False)["input_ids"]
                if mode == "answer":
                    gens = generate(prompts, longest + 2, answer_stops)
                else:
                    expected = tokenizer([f" {r['hint']}.{ANSWER_PREFIX} {r['answer']}." for r in asked],
                                         add_special_tokens=False)["input_ids"]
                    budget = max(map(len, expected)) + 2
                    gens = generate(prompts, budget, eos_only)
                preds = []
                for r, g in zip(asked, gens):
                    text = tokenizer.decode(cut_at_eos(g, tokenizer.eos_token_id), skip_special_tokens=False)
                    if mode == "answer":
                        hint, answer = None, answer_from_text(text)
                    else:
                        hint, answer = parse_hint_mode(text)
                    preds.append({"task": r["task"], "family": r["family"], "split": split, "mode": mode,
                                  "person_id": r["person_id"], "other_id": r["other_id"],
                                  "answer": r["answer"], "prediction": answer, "exact": answer in r["accepted"],
                                  "hint": r["hint"] or None, "predicted_hint": hint,
                                  "hint_exact": None if hint is None else hint == r["hint"]})
                out[mode] = {"exact": _accuracy(preds, "exact"), "rows": len(preds)}
                if mode == "hint":
                    out[mode]["hint"] = _accuracy(preds, "hint_exact")
                predictions += preds
            result["splits"][split] = out
    finally:
        base.train(was_training)
    return result, predictions


def result_table(result: dict, split: str = "test") -> str:
    """A markdown table: task, answer-mode, hint-mode answer and hint accuracy, baseline (%)."""
    res = result["splits"][split]
    ans, hint = res.get("answer", {}), res.get("hint", {})

    def pct(d: dict, key: str, task: str) -> str:
        v = d.get(key, {}).get(task)
        return "-" if v is None else f"{100 * v:.1f}"

    lines = ["| task | answer only | with hint: answer | with hint: hint | baseline |", "|---|---|---|---|---|"]
    for task, base in res["baseline"].items():
        lines.append(f"| {task} | {pct(ans, 'exact', task)} | {pct(hint, 'exact', task)} | "
                     f"{pct(hint, 'hint', task)} | {100 * base:.1f} |")
    return "\n".join(lines)


def write_eval(out: str | Path, result: dict, predictions: list[dict]) -> None:
    """OUT/eval_tasks.json, OUT/eval_tasks.md and OUT/predictions.jsonl, as one atomic folder."""
    from knowlab.io import atomic_dir, write_json_atomic, write_text_atomic

    with atomic_dir(Path(out), overwrite=True) as tmp:
        write_json_atomic(tmp / "eval_tasks.json", result)
        write_text_atomic(tmp / "eval_tasks.md", "\n\n".join(
            f"## {split}\n\n{result_table(result, split)}" for split in result["splits"]) + "\n")
        write_text_atomic(tmp / "predictions.jsonl",
                          "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in predictions))
