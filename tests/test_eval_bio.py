"""BIO memorisation: the first token of each attribute, teacher-forced, after a leading EOS."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from knowlab.data.dataset import Dataset
from knowlab.eval.bio import bio_first_token, bio_rows, first_token_hits
from knowlab.models.presets import ModelConfig, build_model

V = 16


class NextIsPlusOne(torch.nn.Module):
    """A stand-in LM that always predicts token x + 1 after token x (the backbone one-hot encodes
    x + 1 and the head is the identity)."""

    def __init__(self):
        super().__init__()
        self.head = torch.nn.Linear(V, V, bias=False)
        with torch.no_grad():
            self.head.weight.copy_(torch.eye(V))
        self.base_model = lambda input_ids, attention_mask: SimpleNamespace(
            last_hidden_state=torch.nn.functional.one_hot((input_ids + 1) % V, V).float())

    def get_output_embeddings(self):
        return self.head


def test_hand_built_case():
    eos, pad = 0, 15
    # bio tokens; attribute starts at 0 (predicted from EOS: 1 != 5), 1 (from 5: 6 == 6),
    # 3 (from 7: 8 != 9) and 4 (from 9: 10 == 10)
    bios = [[5, 6, 7, 9, 10], [3, 4]]
    starts = torch.tensor([[0, 1, 3, 4], [1, 1, 1, 1]])
    hits = first_token_hits(NextIsPlusOne(), bios, starts, eos, pad, batch_size=2)
    assert hits.tolist() == [[False, True, False, True], [True, True, True, True]]


def test_matches_full_forward(tiny_dataset):
    """Gathering six positions from the backbone agrees with argmax over full logits."""
    torch.set_num_threads(1)
    ds = Dataset(tiny_dataset)
    tok = ds.tokenizer
    cfg = ModelConfig(size="custom", n_layer=2, n_head=2, n_embd=64, context=256)
    model = build_model(cfg, len(tok), tok.eos_token_id, tok.pad_token_id, seed=1).eval()
    ids, starts, attrs = bio_rows(ds, "test")
    ids, starts = ids[:5], starts[:5]
    hits = first_token_hits(model, ids, starts, tok.eos_token_id, tok.pad_token_id, batch_size=2)
    with torch.no_grad():
        for i, seq in enumerate(ids):
            logits = model(torch.tensor([[tok.eos_token_id] + seq])).logits[0]
            for j, s in enumerate(starts[i].tolist()):
                assert hits[i, j].item() == (logits[s].argmax().item() == seq[s])
    acc = bio_first_token(model, ds, "test", batch_size=4)
    assert set(acc) == set(attrs) | {"mean"} and 0.0 <= acc["mean"] <= 1.0
    assert not model.training
