"""Masked language modelling for GBERT ([P] App. H): whole-word masking and the MLM losses.

Pretraining (and mixed training) corrupt each window with whole-word masking: 15% of the words
are selected; a selected word becomes all mask tokens (80%), stays as it is (10%) or becomes
random tokens (10%), and the loss covers exactly the tokens of selected words. A word starts at
a token whose text opens with the byte-level space marker "Ġ" (or SentencePiece's "▁"), at a
special token and right after one; special tokens (EOS, padding, mask, name end) are never
selected. Decisions are drawn per word, so all tokens of a word share them. Every window gets
at least one selected word, so no batch is left without a target (it moves the rate by well
under 0.1% at 128-token windows).

The corruption is a pure function of (seed, step, rank): a resumed run masks exactly as the
interrupted one would have.

QA finetuning (and QA evaluation) mask the whole answer instead: every token of the value and
its closing period becomes the mask token and the model must restore all of them.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

MLM_STREAM = 4  # seed salt, independent of packing's streams (1-3)
WORD_MARKERS = ("Ġ", "▁")


@torch.no_grad()
def check_bidirectional(model) -> None:
    """Refuse a model whose config asks for bidirectional attention that the installed
    transformers does not honour (older releases ignore `is_causal`): MLM would silently
    train a causal model that cannot see the words after a mask."""
    from knowlab.errors import KnowlabError

    was_training = model.training
    model.eval()
    try:
        dev = next(model.parameters()).device
        x = torch.tensor([[1, 2, 3], [1, 2, 4]], device=dev) % model.config.vocab_size
        hidden = model(input_ids=x, output_hidden_states=True).hidden_states[-1]
    finally:
        model.train(was_training)
    if torch.allclose(hidden[0, 0], hidden[1, 0]):
        import transformers

        raise KnowlabError(f"transformers {transformers.__version__} ignores config.is_causal=False: the model "
                           "attends causally; GBERT needs transformers 5 (see docs/gbert.md)")


def special_ids(tokenizer) -> list[int]:
    return sorted({i for i in tokenizer.all_special_ids if i is not None and i < len(tokenizer)})


def word_start_table(tokenizer, vocab_size: int) -> torch.Tensor:
    """Bool [vocab_size]: does this token begin a word (its text starts with a space marker)?"""
    n = min(vocab_size, len(tokenizer))
    tokens = tokenizer.convert_ids_to_tokens(list(range(n)))
    table = torch.zeros(vocab_size, dtype=torch.bool)
    table[:n] = torch.tensor([bool(t) and t.startswith(WORD_MARKERS) for t in tokens])
    return table


def step_generator(seed: int, step: int, rank: int = 0) -> torch.Generator:
    state = np.random.SeedSequence([seed, MLM_STREAM, step, rank]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


class WholeWordMasker:
    """(input_ids) -> (corrupted inputs, labels): BERT's 80/10/10 applied to whole words."""

    def __init__(self, tokenizer, vocab_size: int | None = None, rate: float = 0.15,
                 mask_frac: float = 0.8, random_frac: float = 0.1, seed: int = 0):
        vocab_size = vocab_size or len(tokenizer)
        self.rate, self.mask_frac, self.random_frac, self.seed = rate, mask_frac, random_frac, seed
        self.mask_id = tokenizer.mask_token_id
        if self.mask_id is None:
            raise ValueError("whole-word masking needs a tokenizer with a mask token")
        specials = special_ids(tokenizer)
        self.special = torch.zeros(vocab_size, dtype=torch.bool)
        self.special[specials] = True
        self.starts = word_start_table(tokenizer, vocab_size) | self.special
        # Random replacements are ordinary tokens: a random EOS or mask would teach nothing useful.
        ordinary = torch.ones(vocab_size, dtype=torch.bool)
        ordinary[specials] = False
        ordinary[len(tokenizer):] = False
        self.random_pool = torch.nonzero(ordinary).flatten()

    def words(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(word index of every token [B, L], special-token mask [B, L])."""
        special = self.special[ids]
        start = self.starts[ids].clone()
        start[:, 0] = True
        start[:, 1:] |= special[:, :-1]  # the token after EOS opens a word even without a space
        return start.long().cumsum(1) - 1, special

    def __call__(self, ids: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        ids = ids.long()
        word, special = self.words(ids)
        b, n = ids.shape
        rows = torch.arange(b)[:, None]
        chosen = torch.rand(b, n, generator=generator) < self.rate  # indexed by word, not token
        selected = chosen[rows, word] & ~special
        # A window without any selected word would have no loss target; select one of its words.
        empty = ~selected.any(1) & (~special).any(1)
        if empty.any():
            score = torch.rand(b, n, generator=generator).masked_fill(special, -1.0)
            pick = word[torch.arange(b), score.argmax(1)]
            chosen[empty.nonzero().flatten(), pick[empty]] = True
            selected = chosen[rows, word] & ~special
        action = torch.rand(b, n, generator=generator)[rows, word]  # one draw per word
        to_mask = selected & (action < self.mask_frac)
        to_random = selected & (action >= self.mask_frac) & (action < self.mask_frac + self.random_frac)
        inputs = ids.clone()
        inputs[to_mask] = self.mask_id
        draws = torch.randint(len(self.random_pool), (int(to_random.sum()),), generator=generator)
        inputs[to_random] = self.random_pool[draws]
        labels = torch.where(selected, ids, torch.full_like(ids, -100))
        return inputs, labels

    def for_step(self, ids: torch.Tensor, step: int, rank: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """The corruption of pretraining step `step` on `rank` (reproducible across resumes)."""
        return self(ids, step_generator(self.seed, step, rank))


def mask_answers(batch: dict[str, torch.Tensor], mask_id: int, eos_id: int | None) -> dict[str, torch.Tensor]:
    """A finetuning batch (see finetune.collate: labels on the answer and EOS) for MLM: the
    answer tokens are replaced by the mask token and are the only targets (EOS stays visible)."""
    labels = batch["labels"].clone()
    if eos_id is not None:
        labels[batch["input_ids"] == eos_id] = -100
    inputs = batch["input_ids"].masked_fill(labels != -100, mask_id)
    return {**batch, "input_ids": inputs, "labels": labels}


def mlm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each labelled position's logits against its own token (no shift)."""
    return F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100)


def masked_answer_loss(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Finetuning loss of a `mask_answers` batch: restore the masked answer tokens."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return mlm_loss(logits, batch["labels"])
