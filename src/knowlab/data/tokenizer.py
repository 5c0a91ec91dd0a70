"""knowlab's tokenizer: byte-level BPE trained on the generated corpus, saved as an HF folder.

A prefix space is added to every text, so a name or value is the same token whether it opens a
bio or follows "of" in a question, and an answer after "Answer:" starts with the same token as
the value inside a bio. Users can bring any local HF tokenizer folder (GPT-2's) instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from knowlab.data.schema import EOS, MASK, NAME_END, PAD, SPECIAL_TOKENS
from knowlab.errors import KnowlabError


def train_tokenizer(texts: Iterable[str], vocab_size: int):
    """Train a byte-level BPE on `texts`; returns a `transformers` fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    if vocab_size < len(alphabet) + len(SPECIAL_TOKENS):
        raise KnowlabError(f"vocab_size must be at least {len(alphabet) + len(SPECIAL_TOKENS)}, got {vocab_size}")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    # Offsets keep the leading space, so the space before a value belongs to its first token.
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=alphabet,
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    return wrap(tok)


def wrap(tok):
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=EOS,
        bos_token=EOS,
        unk_token=EOS,
        pad_token=PAD,
        mask_token=MASK,
        additional_special_tokens=[NAME_END],
    )
    fast.model_max_length = 1 << 30
    return fast


def load_tokenizer(path: str | Path):
    """Load a local HF tokenizer folder (offline) and make sure it has EOS and PAD."""
    from transformers import AutoTokenizer

    path = Path(path)
    if not path.is_dir():
        raise KnowlabError(f"tokenizer folder not found: {path}")
    try:
        tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise KnowlabError(f"{path}: not a loadable HF tokenizer folder ({str(exc).splitlines()[0]})") from None
    if tok.eos_token is None:
        raise KnowlabError(f"{path}: tokenizer has no EOS token; knowlab separates bios with EOS")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if getattr(tok, "mask_token", None) is None:
        tok.add_special_tokens({"mask_token": MASK})
    if NAME_END not in tok.get_vocab():
        tok.add_special_tokens({"additional_special_tokens": [NAME_END]})
    return tok


def encode_spans(tok, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]]):
    """Token ids of `texts` and, for every character span, the token range [t0, t1) covering it.

    Uses the Rust encodings' char_to_token, so no per-token offset lists are built in Python.
    """
    encodings = tok.backend_tokenizer.encode_batch(list(texts), add_special_tokens=False)
    ids, token_spans = [], []
    for enc, text_spans in zip(encodings, spans):
        ids.append(enc.ids)
        row = []
        for start, end in text_spans:
            t0, t1 = enc.char_to_token(start), enc.char_to_token(end - 1)
            if t0 is None or t1 is None:
                raise ValueError(f"span {start}:{end} does not map onto tokens")
            row.append((t0, t1 + 1))
        token_spans.append(row)
    return ids, token_spans
