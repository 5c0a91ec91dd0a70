"""BIO memorisation: next-token accuracy on the first token of each attribute inside the bios.

This is Figure 1's "BIO first-token accuracy" and Remark C.1's stopping rule for pretraining
(well above 99%). Each bio is fed as in pretraining, preceded by EOS; with teacher forcing, the
logits at the position just before attribute A's first token must argmax to that token, i.e.
input_ids[A_tok_start] is predicted from input_ids[:A_tok_start]. Only those six positions are
projected onto the vocabulary, so the cost is one forward of the backbone per bio.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc
import torch

from knowlab.data.dataset import Dataset
from knowlab.data.schema import ATTRIBUTES
from knowlab.models.runtime import autocast_for, default_batch_size, model_device, pad_id, unwrap
from knowlab.progress import progress


def bio_rows(ds: Dataset, split: str | None = None, people: Sequence[int] | None = None):
    """(input_ids lists, token starts [n, attrs]) of the bios of `split` / `people`."""
    table = ds.bios
    if split is not None:
        table = table.filter(pc.equal(table["split"], split))
    if people is not None:
        table = table.filter(pc.is_in(table["person_id"], value_set=pa.array(list(people), table["person_id"].type)))
    attrs = [a for a in ATTRIBUTES if f"{a}_tok_start" in table.column_names]
    ids = table["input_ids"].to_pylist()
    starts = torch.stack([torch.as_tensor(table[f"{a}_tok_start"].to_numpy().astype("int64")) for a in attrs], 1) \
        if len(table) else torch.zeros((0, len(attrs)), dtype=torch.long)
    return ids, starts, attrs


@torch.no_grad()
def first_token_hits(model, sequences: Sequence[Sequence[int]], starts: torch.Tensor, eos_id: int, pad_id: int,
                     batch_size: int = 0, show_progress: bool = False) -> torch.Tensor:
    """Bool [n, attrs]: does argmax at A_tok_start - 1 predict sequences[i][A_tok_start]?

    `sequences` are bios without EOS; EOS is prepended here, which shifts every index by one, so
    the prediction for token t of the bio sits at position t of the padded input.
    """
    base = unwrap(model)
    dev = model_device(base)
    batch_size = batch_size or default_batch_size(base)
    backbone, head = base.base_model, base.get_output_embeddings()
    hits = torch.zeros(starts.shape, dtype=torch.bool)
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    with autocast_for(base):
        for s in progress(range(0, len(order), batch_size), desc="bio", disable=not show_progress):
            idx = order[s:s + batch_size]
            width = 1 + max(len(sequences[i]) for i in idx)
            ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for row, i in enumerate(idx):  # right padding: positions are the natural 0..n-1
                ids[row, 0] = eos_id
                ids[row, 1:1 + len(sequences[i])] = torch.as_tensor(sequences[i], dtype=torch.long)
                mask[row, :1 + len(sequences[i])] = 1
            pos = starts[idx]  # [b, attrs]: logits here predict bio token pos (input index pos + 1)
            targets = ids.gather(1, pos + 1)
            hidden = backbone(input_ids=ids.to(dev), attention_mask=mask.to(dev)).last_hidden_state
            picked = hidden.gather(1, pos.to(dev)[..., None].expand(-1, -1, hidden.shape[-1]))
            pred = head(picked).argmax(-1).cpu()
            hits[idx] = pred == targets
    return hits


def bio_first_token(model, data: Dataset, split: str | None = None, people: Sequence[int] | None = None,
                    batch_size: int = 0, show_progress: bool = False) -> dict[str, float]:
    """Per-attribute and mean BIO first-token accuracy in [0, 1] over the selected bios."""
    ids, starts, attrs = bio_rows(data, split, people)
    if not ids:
        return {}
    tok = data.tokenizer
    pad = pad_id(tok)
    was_training = model.training
    model.eval()
    try:
        hits = first_token_hits(model, ids, starts, tok.eos_token_id, pad, batch_size, show_progress)
    finally:
        model.train(was_training)
    acc = hits.float().mean(0).tolist()
    out = dict(zip(attrs, acc))
    out["mean"] = sum(acc) / len(acc)
    return out
