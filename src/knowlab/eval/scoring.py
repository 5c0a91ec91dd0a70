"""Scoring a generated answer: where it ends, and when it counts as right.

Answer delimitation (the paper's "exact match", [P] Section 2; the rule lm-eval's task export
reproduces):
  1. The model is given the prompt `{question} Answer:` (no trailing space) and continues.
  2. The generated tokens are cut at the first EOS token and decoded to text.
  3. The predicted answer is the text before the first "." or newline, with surrounding
     whitespace stripped. Values never contain a period, so the period that ends a QA text
     ends the answer; what follows it ("... She was born ...") is ignored.
  4. Exact match: predicted answer == the attribute value, case- and space-sensitive. A partial
     answer or an answer that runs on without a period ("Princeton, NJ is") is wrong.
First-token accuracy: the teacher-forced argmax after "Answer:" equals the first token of the
value, input_ids[answer_tok_start] of the QA text. Usually that is the first greedy token. When
the value's leading space is a token of its own (small vocabularies), the context includes that
space, as BIO memorisation's does. With beams the evaluator still uses that argmax (it is what
Figure 1's "first-token accuracy" measures).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from knowlab.data.schema import ATTRIBUTES

STOP_CHARS = (".", "\n")


def answer_from_text(continuation: str) -> str:
    """The predicted answer inside decoded continuation text (already cut at EOS)."""
    cut = len(continuation)
    for ch in STOP_CHARS:
        i = continuation.find(ch)
        if i != -1:
            cut = min(cut, i)
    return continuation[:cut].strip()


def cut_at_eos(tokens: Sequence[int], eos_id: int | None) -> list[int]:
    tokens = list(tokens)
    if eos_id is not None and eos_id in tokens:
        tokens = tokens[: tokens.index(eos_id)]
    return tokens


def answer_from_tokens(tokens: Sequence[int], tokenizer) -> str:
    """Decode generated tokens (EOS ends them) and delimit the answer.

    Special tokens other than EOS are kept in the text, so emitting one inside an answer makes it
    wrong rather than silently vanishing.
    """
    text = tokenizer.decode(cut_at_eos(tokens, tokenizer.eos_token_id), skip_special_tokens=False)
    return answer_from_text(text)


def exact_match(prediction: str, value: str) -> bool:
    return prediction == value


def stop_token_mask(tokenizer, vocab_size: int):
    """Bool tensor over the model's vocabulary: tokens after which an answer is certainly over.

    A token ends the answer if it is EOS or its text contains "." or a newline. Generation may
    stop there; scoring does not depend on it (it works on the decoded text).
    """
    import torch

    mask = torch.zeros(vocab_size, dtype=torch.bool)
    n = min(vocab_size, len(tokenizer))
    texts = tokenizer.batch_decode([[i] for i in range(n)], skip_special_tokens=False)
    for i, text in enumerate(texts):
        if any(ch in text for ch in STOP_CHARS):
            mask[i] = True
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id < vocab_size:
        mask[tokenizer.eos_token_id] = True
    return mask


def per_attribute(rows: Iterable[Mapping], key: str) -> dict[str, float]:
    """Accuracy of boolean `key` per attribute, plus `mean` = the mean over attributes present.

    The mean weights attributes equally, as the paper's Figure 3 "mean" column does (with all six
    questions asked of every person it is also the overall accuracy).
    """
    hits: dict[str, list[int]] = {}
    for row in rows:
        hits.setdefault(row["attribute"], []).append(int(bool(row[key])))
    out = {a: sum(h) / len(h) for a in ATTRIBUTES if (h := hits.get(a))}
    for a, h in hits.items():  # attributes outside the six (custom datasets) still count
        if a not in out:
            out[a] = sum(h) / len(h)
    out["mean"] = sum(out.values()) / len(out) if out else float("nan")
    return out


def qa_metrics(preds: Sequence[Mapping]) -> dict:
    """One split's QA metrics from its prediction records (each with "exact" and "first_token")."""
    return {"questions": len(preds), "people": len({p["person_id"] for p in preds}),
            "exact": per_attribute(preds, "exact"), "first_token": per_attribute(preds, "first_token")}
