"""QA evaluation of a bidirectional GBERT model by mask filling ([P] App. H).

A QA is `{question} Answer: {value}.`. The model sees the prompt's tokens, then one mask token
per answer token (the value and its closing period, the dataset's token count, so the model is
told the length), then EOS; one forward predicts every mask at once (argmax at each). The fill
is decoded and its answer delimited as a generated one is (eval/scoring.py): exact match is that
string equal to the value, as for generation; first-token accuracy asks only for the value's
first token. eval/scorers.py runs this for bidirectional models, so tables, reports and hooks
read both alike.

BIO memorisation for GBERT: in each bio (preceded by EOS, as in pretraining) one attribute's
value tokens are all masked, and the model must restore the value's first token; one masked copy
of the bio per attribute.

The masked span of a QA starts where the prompt text's tokens end (`prompt_lengths`), exactly
the span QA finetuning masks, so a value whose leading space is a token of its own has that
space masked too; the first-token score then asks for the value's first token, past that space.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from knowlab.data.dataset import Dataset
from knowlab.data.schema import ATTRIBUTES
from knowlab.errors import KnowlabError
from knowlab.eval.qa import prompt_lengths, value_starts
from knowlab.eval.scoring import answer_from_text, exact_match
from knowlab.models.runtime import autocast_for, default_batch_size, model_device, pad_id, unwrap
from knowlab.progress import progress


def _masked_logits(model, ids: torch.Tensor, attn: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
    """Logits [n_selected, vocab] at the True positions of `where`; only those reach the head."""
    backbone = getattr(model, "base_model", None)
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if backbone is not None and backbone is not model and head is not None:
        hidden = backbone(input_ids=ids, attention_mask=attn).last_hidden_state
        return head(hidden[where])
    return model(input_ids=ids, attention_mask=attn).logits[where]


@torch.no_grad()
def fill_masks(model, sequences: Sequence[Sequence[int]], mask_id: int, pad_id: int, batch_size: int = 0,
               show_progress: bool = False) -> list[list[int]]:
    """Argmax prediction at every `mask_id` of each sequence, one forward per batch."""
    base = unwrap(model)
    dev = model_device(base)
    batch_size = batch_size or default_batch_size(base)
    out: list[list[int]] = [[] for _ in sequences]
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    with autocast_for(base):
        for s in progress(range(0, len(order), batch_size), desc="fill", disable=not show_progress):
            idx = order[s:s + batch_size]
            width = max(len(sequences[i]) for i in idx)
            ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
            attn = torch.zeros((len(idx), width), dtype=torch.long)
            for row, i in enumerate(idx):  # right padding: positions stay 0..n-1, pads are masked out
                ids[row, :len(sequences[i])] = torch.as_tensor(sequences[i], dtype=torch.long)
                attn[row, :len(sequences[i])] = 1
            where = ids == mask_id
            pred = _masked_logits(base, ids.to(dev), attn.to(dev), where.to(dev)).argmax(-1).cpu()
            counts = where.sum(1).tolist()
            for i, chunk in zip(idx, pred.split(counts)):
                out[i] = chunk.tolist()
    return out


def mlm_qa_rows(ds: Dataset, split: str, people: Sequence[int] | None = None) -> list[dict]:
    """QA rows of `split`: prompt tokens (`context`), the masked answer tokens (`targets`) and
    the index in `targets` of the value's first token (`first`)."""
    cols = _select(ds.qa, split, people).select(["person_id", "attribute", "answer", "prompt", "input_ids", "answer_tok_start"]).to_pydict()
    lengths = prompt_lengths(ds.tokenizer, cols["prompt"], cols["input_ids"], cols["answer_tok_start"])
    starts = value_starts(ds.tokenizer, cols["input_ids"], cols["answer_tok_start"])
    return [{"person_id": pid, "attribute": attr, "answer": ans, "context": ids[:n], "targets": ids[n:],
             "first": start - n}
            for pid, attr, ans, ids, start, n in zip(cols["person_id"], cols["attribute"], cols["answer"],
                                                     cols["input_ids"], starts, lengths)]


def score_fills(rows: Sequence[dict], fills: Sequence[Sequence[int]], tokenizer, split: str) -> list[dict]:
    """One prediction record per row: exact = the answer string read from the fill is the value
    (eval/scoring.py, as for generation), first_token = the value's first token restored.

    The fill is decoded whole, EOS included: every mask stands for an answer token, so an EOS
    where the period belongs is a wrong answer, not the end of a shorter one (no EOS cut, unlike
    generation, where EOS is where the model chose to stop)."""
    preds = []
    for r, fill in zip(rows, fills):
        fill = list(fill)
        answer = answer_from_text(tokenizer.decode(fill, skip_special_tokens=False))
        preds.append({"person_id": r["person_id"], "attribute": r["attribute"], "split": split,
                      "answer": r["answer"], "prediction": answer, "exact": exact_match(answer, r["answer"]),
                      "first_token": len(fill) > r["first"] and fill[r["first"]] == r["targets"][r["first"]]})
    return preds


def bio_masked_first_token(model, data: Dataset, split: str | None = None, people: Sequence[int] | None = None,
                           batch_size: int = 0, show_progress: bool = False) -> dict[str, float]:
    """Per-attribute and mean accuracy of restoring a value's first token with the value masked."""
    table = _select(data.bios, split, people)
    attrs = [a for a in ATTRIBUTES if f"{a}_tok_start" in table.column_names]
    if not len(table) or not attrs:
        return {}
    tok = data.tokenizer
    mask, eos = mask_id(tok), tok.eos_token_id
    pad = pad_id(tok)
    spans = [zip(table[f"{a}_tok_start"].to_pylist(), table[f"{a}_tok_end"].to_pylist()) for a in attrs]
    seqs, targets = [], []
    for bio, *attr_spans in zip(table["input_ids"].to_pylist(), *spans):
        for a0, a1 in attr_spans:
            seqs.append([eos, *bio[:a0], *[mask] * (a1 - a0), *bio[a1:]])
            targets.append(bio[a0])
    was_training = model.training
    model.eval()
    try:
        fills = fill_masks(model, seqs, mask, pad, batch_size, show_progress)
    finally:
        model.train(was_training)
    hits = torch.tensor([f[0] == t for f, t in zip(fills, targets)], dtype=torch.float).view(-1, len(attrs))
    out = dict(zip(attrs, hits.mean(0).tolist()))
    out["mean"] = sum(out.values()) / len(attrs)
    return out


def _select(table, split: str | None, people: Sequence[int] | None):
    """Rows of a bios/qa table in `split` (None: all) and, if given, of `people`."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if split is not None:
        table = table.filter(pc.equal(table["split"], split))
    if people is not None:
        table = table.filter(pc.is_in(table["person_id"], value_set=pa.array(list(people), table["person_id"].type)))
    return table


def mask_id(tokenizer) -> int:
    """The tokenizer's mask token; a GBERT tokenizer without one cannot be evaluated."""
    if tokenizer.mask_token_id is None:
        raise KnowlabError("the tokenizer has no mask token; GBERT evaluation needs one")
    return tokenizer.mask_token_id
