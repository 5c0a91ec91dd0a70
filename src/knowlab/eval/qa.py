"""QA evaluation by generation: the paper's knowledge-extraction measurement ([P] Section 2).

For every question of the evaluated people, the model continues the prompt `{question} Answer:`
and the answer is delimited and scored as `knowlab.eval.scoring` documents (exact match of the
whole value; first-token accuracy). Greedy decoding is the fast default: a batched loop with a
KV cache over left-padded prompts sorted by length, stopping once every row has ended its answer.
Beam search (the paper uses 4 beams) goes through HF `generate`, batched the same way.

Prompts are the tokens of the prompt text, a prefix of the dataset's input_ids (see
`prompt_lengths`: the same tokens finetuning trains on, and what lm-eval feeds); no BOS is
prepended (neither does lm-eval's HF backend).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from knowlab.data.dataset import Dataset
from knowlab.errors import KnowlabError
from knowlab.eval.scoring import answer_from_tokens, exact_match, qa_metrics, stop_token_mask
from knowlab.models.runtime import autocast_for, default_batch_size, model_device, pad_id, unwrap
from knowlab.progress import progress

SPLITS = ("train", "test")


# ---- models -----------------------------------------------------------------------------------

def _cache_of(out):
    for name in ("cache", "past_key_values"):  # transformers 5 renamed the output field
        value = getattr(out, name, None)
        if value is not None:
            return value
    return None


def _cache_kwarg(model) -> str:
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def left_pad(prompts: Sequence[Sequence[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask, position_ids), positions counting from each row's first token."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, p in enumerate(prompts):
        ids[row, width - len(p):] = torch.as_tensor(p, dtype=torch.long)
        mask[row, width - len(p):] = 1
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    return ids.to(device), mask.to(device), pos.to(device)


# ---- generation -------------------------------------------------------------------------------

@torch.no_grad()
def greedy_generate(model, prompts: Sequence[Sequence[int]], max_new_tokens: int, stop_mask: torch.Tensor,
                    pad_id: int, batch_size: int = 0, show_progress: bool = False) -> list[list[int]]:
    """Greedy continuations of `prompts`, each cut right after its first stop token.

    Token-identical to HF `generate(do_sample=False)` one prompt at a time (left padding with
    matching position ids changes nothing but float rounding). Rows that stopped keep decoding
    until the whole batch has stopped: cheaper than reshaping the cache for answers this short.
    """
    model = unwrap(model)
    dev = model_device(model)
    batch_size = batch_size or default_batch_size(model)
    stop_mask = stop_mask.to(dev)
    key = _cache_kwarg(model)
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    out: list[list[int]] = [[] for _ in prompts]
    chunks = range(0, len(order), batch_size)
    with autocast_for(model):
        for start in progress(chunks, desc="generate", disable=not show_progress):
            idx = order[start:start + batch_size]
            ids, mask, pos = left_pad([prompts[i] for i in idx], pad_id, dev)
            res = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, logits_to_keep=1)
            cache, steps = _cache_of(res), []
            done = torch.zeros(len(idx), dtype=torch.bool, device=dev)
            for t in range(max_new_tokens):
                nxt = res.logits[:, -1].argmax(-1)
                steps.append(nxt)
                done |= stop_mask[nxt]
                if t == max_new_tokens - 1 or bool(done.all()):
                    break
                mask = torch.cat([mask, mask.new_ones((len(idx), 1))], dim=1)
                pos = pos[:, -1:] + 1
                res = model(input_ids=nxt[:, None], attention_mask=mask, position_ids=pos,
                            use_cache=True, logits_to_keep=1, **{key: cache})
                cache = _cache_of(res)
            gen = torch.stack(steps, 1).tolist()
            stops = stop_mask[torch.stack(steps, 1)].tolist()
            for row, i in enumerate(idx):
                end = stops[row].index(True) + 1 if True in stops[row] else len(gen[row])
                out[i] = gen[row][:end]
    return out


@torch.no_grad()
def beam_generate(model, prompts: Sequence[Sequence[int]], max_new_tokens: int, stop_mask: torch.Tensor,
                  pad_id: int, beams: int = 4, batch_size: int = 0, show_progress: bool = False) -> list[list[int]]:
    """Beam-search continuations via HF `generate`; every stop token ends a beam."""
    model = unwrap(model)
    dev = model_device(model)
    batch_size = max(1, (batch_size or default_batch_size(model)) // beams)
    stop_ids = torch.nonzero(stop_mask).flatten().tolist()
    is_stop = stop_mask.tolist()
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    out: list[list[int]] = [[] for _ in prompts]
    with autocast_for(model):
        for start in progress(range(0, len(order), batch_size), desc=f"beam{beams}", disable=not show_progress):
            idx = order[start:start + batch_size]
            ids, mask, _ = left_pad([prompts[i] for i in idx], pad_id, dev)
            gen = model.generate(input_ids=ids, attention_mask=mask, num_beams=beams, do_sample=False,
                                 max_new_tokens=max_new_tokens, eos_token_id=stop_ids, pad_token_id=pad_id)
            gen = gen[:, ids.shape[1]:].tolist()
            for row, i in enumerate(idx):
                toks = gen[row]
                end = next((k + 1 for k, t in enumerate(toks) if is_stop[t]), len(toks))
                out[i] = toks[:end]
    return out


# ---- questions --------------------------------------------------------------------------------

def people_of_split(ds: Dataset, split: str, max_people: int | None, seed: int = 0) -> list[int]:
    """Ids of the people of `split` (P_train or P_test), or a fixed random sample of them."""
    ids = np.unique(np.asarray(ds.qa.filter(pc.equal(ds.qa["split"], split))["person_id"]))
    if max_people and len(ids) > max_people:
        rng = np.random.default_rng(seed)
        ids = np.sort(rng.choice(ids, size=max_people, replace=False))
    return ids.tolist()


def prompt_lengths(tokenizer, prompts: Sequence[str], input_ids: Sequence[Sequence[int]],
                   answer_starts: Sequence[int]) -> list[int]:
    """How many leading tokens of each QA's input_ids are the prompt text `{question} Answer:`.

    Usually answer_tok_start. But when the value's first word has no token that carries its
    leading space (a small BPE vocabulary), the space is a token of its own: answer_tok_start
    points at it, and the prompt's tokens stop just before it. The prompt is what a user (or
    lm-eval) feeds, so generation starts from its own tokens and the model must produce that
    space itself. Byte-level BPE splits "Answer:" from the value, so the prompt's tokens are a
    prefix of the text's; if a tokenizer breaks that, answer_tok_start.
    """
    encoded = tokenizer(list(prompts), add_special_tokens=False)["input_ids"]
    return [len(e) if list(ids[:len(e)]) == e else start
            for e, ids, start in zip(encoded, input_ids, answer_starts)]


def value_starts(tokenizer, input_ids: Sequence[Sequence[int]], answer_starts: Sequence[int]) -> list[int]:
    """Index of each QA's first value token: answer_tok_start, or past it where the answer's
    leading space is a token of its own. First-token accuracy must ask for the value, not for a
    space that every model gets right."""
    blank: dict[int, bool] = {}
    out = []
    for ids, i in zip(input_ids, answer_starts):
        while i < len(ids) - 1:
            if ids[i] not in blank:
                blank[ids[i]] = not tokenizer.decode([ids[i]]).strip()
            if not blank[ids[i]]:
                break
            i += 1
        out.append(i)
    return out


def qa_rows(ds: Dataset, split: str, people: Sequence[int] | None = None) -> list[dict]:
    """The QA rows of `split` (restricted to `people`): prompt tokens, the teacher-forced context
    of the value's first token (input_ids up to it, a separate space token included) and that token."""
    table = ds.qa.filter(pc.equal(ds.qa["split"], split))
    if people is not None:
        table = table.filter(pc.is_in(table["person_id"], value_set=pa.array(list(people), table["person_id"].type)))
    cols = table.select(["person_id", "attribute", "answer", "prompt", "input_ids", "answer_tok_start"]).to_pydict()
    lengths = prompt_lengths(ds.tokenizer, cols["prompt"], cols["input_ids"], cols["answer_tok_start"])
    starts = value_starts(ds.tokenizer, cols["input_ids"], cols["answer_tok_start"])
    rows = []
    for pid, attr, ans, ids, start, n in zip(cols["person_id"], cols["attribute"], cols["answer"], cols["input_ids"],
                                             starts, lengths):
        rows.append({"person_id": pid, "attribute": attr, "answer": ans, "prompt_ids": ids[:n],
                     "context_ids": ids[:start], "first_target": ids[start]})
    return rows


def split_rows(ds: Dataset, split: str, people: Sequence[int] | None, rows_of=qa_rows) -> list[dict]:
    """`rows_of(ds, split, people)`, or one clear error for an unknown or an empty split; the
    generation and mask-filling scorers both start here."""
    if split not in SPLITS:
        raise KnowlabError(f"split must be one of {', '.join(SPLITS)}, got '{split}'")
    rows = rows_of(ds, split, people)
    if not rows:
        raise KnowlabError(f"{ds.path}: no QA rows in split '{split}'")
    return rows


def max_answer_tokens(ds: Dataset) -> int:
    """Longest tokenized answer in the dataset, period and a separate space token (see
    prompt_lengths) included; input_ids carry no EOS, which the +2 margin of callers covers."""
    lengths = pc.subtract(pc.list_value_length(ds.qa["input_ids"]), ds.qa["answer_tok_start"])
    return int(pc.max(lengths).as_py())


def evaluate_qa(model, tokenizer, ds: Dataset | str | Path, split: str = "test", people: Sequence[int] | None = None,
                beams: int = 1, batch_size: int = 0, show_progress: bool = False) -> tuple[dict, list[dict]]:
    """QA metrics of one split: ({"exact": per-attr, "first_token": per-attr, counts}, predictions)."""
    ds = ds if isinstance(ds, Dataset) else Dataset(ds)
    rows = split_rows(ds, split, people)
    base = unwrap(model)
    vocab = base.get_output_embeddings().weight.shape[0]
    stops = stop_token_mask(tokenizer, vocab)
    pad = pad_id(tokenizer)
    prompts = [r["prompt_ids"] for r in rows]
    max_new = max_answer_tokens(ds) + 2
    if beams > 1:
        gens = beam_generate(base, prompts, max_new, stops, pad, beams, batch_size, show_progress)
    else:
        gens = greedy_generate(base, prompts, max_new, stops, pad, batch_size, show_progress)
    # First-token accuracy: teacher-forced argmax at answer_tok_start. Where the context is the
    # prompt itself (the usual case) greedy's first step is that argmax; otherwise one more pass.
    redo = [i for i, r in enumerate(rows) if beams > 1 or len(r["context_ids"]) != len(r["prompt_ids"])]
    firsts = [g[0] for g in gens]
    if redo:
        again = greedy_generate(base, [rows[i]["context_ids"] for i in redo], 1, stops, pad, batch_size)
        for i, g in zip(redo, again):
            firsts[i] = g[0]
    preds = []
    for r, g, f in zip(rows, gens, firsts):
        answer = answer_from_tokens(g, tokenizer)
        preds.append({"person_id": r["person_id"], "attribute": r["attribute"], "split": split,
                      "answer": r["answer"], "prediction": answer, "exact": exact_match(answer, r["answer"]),
                      "first_token": f == r["first_target"]})
    return qa_metrics(preds), preds

