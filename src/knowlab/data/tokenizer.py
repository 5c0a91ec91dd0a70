"""knowlab's tokenizer: byte-level BPE trained on the generated corpus, saved as an HF folder.

A prefix space is added to every text, so a name or value is the same token whether it opens a
bio or follows "of" in a question, and an answer after "Answer:" starts with the same token as
the value inside a bio. Users can bring any local HF tokenizer folder (GPT-2's) instead.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from knowlab.data.schema import EOS, MASK, NAME_END, PAD, SPECIAL_TOKENS
from knowlab.errors import KnowlabError


def train_tokenizer(texts: Iterable[str], vocab_size: int):
    """Train a byte-level BPE on `texts`; returns a `transformers` fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

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


# Any one of these makes a folder loadable: GPT-2's Hub folder has the first three.
TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json", "tokenizer.model")


def load_tokenizer(path: str | Path):
    """Load a local HF tokenizer folder (offline) and make sure it has EOS and PAD."""
    from transformers import AutoTokenizer

    path = Path(path)
    if not path.is_dir():
        raise KnowlabError(f"tokenizer folder not found: {path}")
    if not any((path / f).is_file() for f in TOKENIZER_FILES):
        raise KnowlabError(f"{path}: not an HF tokenizer folder (none of {', '.join(TOKENIZER_FILES)})")
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


def segmentable(tok) -> bool:
    """Whether `tok` is byte-level BPE whose words never cross a segment boundary that
    `plans.junctions_safe` accepts: no normalizer, the GPT-2 split regex, a prefix space."""
    try:
        cfg = json.loads(tok.backend_tokenizer.to_str())
    except Exception:  # pragma: no cover - an exotic tokenizer: take the general path
        return False
    pre, model = cfg.get("pre_tokenizer") or {}, cfg.get("model") or {}
    return (
        cfg.get("normalizer") is None
        and pre.get("type") == "ByteLevel"
        and bool(pre.get("add_prefix_space"))
        and bool(pre.get("use_regex", True))
        and model.get("type") == "BPE"
        and not model.get("dropout")
    )


# A space after a non-space and before a non-space always opens a new byte-level BPE word.
_WORD_START = re.compile(r"(?<=\S)(?= \S)")


@dataclass
class SegmentWords:
    """Segments cut into byte-level BPE words: `words` (distinct), `seq` (word ids of all
    segments back to back) and `count` (words per segment)."""

    words: list[str]
    seq: np.ndarray
    count: np.ndarray


def segment_words(segs) -> SegmentWords:
    """Cut every segment of a `bios.Segments` table into words (no tokenizer needed)."""
    index: dict[str, int] = {}
    seq: list[int] = []
    count = np.zeros(len(segs.strings), dtype=np.int64)
    split, setdefault = _WORD_START.split, index.setdefault
    for i, s in enumerate(segs.strings):
        if s:
            words = split(s)
            count[i] = len(words)
            seq.extend([setdefault(w, len(index)) for w in words])
    return SegmentWords(list(index), np.asarray(seq, dtype=np.int64), count)


@dataclass
class SegmentTokens:
    """Token ids of every segment of a `bios.Segments` table, as it is tokenized in a text."""

    lists: object  # pa.ListArray: segment -> its token ids
    length: np.ndarray  # int64 per segment: how many tokens it has
    # (segments, 3) int64, for value segments: the token holding the segment's first character
    # (the space of " value"), then the token span [t0, t1) of the value itself.
    rel: np.ndarray

    def gather(self, seg: np.ndarray):
        """Token ids of rows of segments: (Arrow int32 ids back to back, row offsets (rows + 1),
        (rows, items) token offset of each segment in its row)."""
        import pyarrow as pa

        seg = seg.reshape(len(seg), -1)
        lens = self.length[seg]
        before = np.cumsum(lens, axis=1) - lens
        offsets = np.zeros(len(seg) + 1, dtype=np.int64)
        if seg.shape[1]:
            np.cumsum(before[:, -1] + lens[:, -1], out=offsets[1:])
        return self.lists.take(pa.array(seg.reshape(-1))).flatten(), offsets, before


def segment_tokens(tok, segs, words: SegmentWords | None = None) -> SegmentTokens | None:
    """Tokenize each segment of `segs` as it is tokenized inside a text, or None if `tok` or the
    segments do not allow it (then texts must be tokenized whole).

    Segments are cut into words at spaces that open a byte-level BPE word; each distinct word is
    encoded behind a one-character context ("a", or "0" before a letter) that is a word of its
    own, and that context's tokens are dropped. A value's token span comes from the char_to_token
    of its first and last words' encodings, exactly as `encode_spans` finds it in a whole text.
    """
    import pyarrow as pa

    if not segs.token_safe or not segmentable(tok):
        return None
    strings, backend = segs.strings, tok.backend_tokenizer
    blob = "\n".join(strings)
    if any(a.content and a.content in blob for a in backend.get_added_tokens_decoder().values()):
        return None  # an added (special) token inside a segment is split off before BPE
    if words is None or len(words.count) != len(strings):
        words = segment_words(segs)
    seq, n_words = words.seq, words.count

    ctx = ["0" if w[:1].isalpha() else "a" for w in words.words]
    ctx_ids = {c: backend.encode(c, add_special_tokens=False).ids for c in ("a", "0")}
    encs = backend.encode_batch([c + w for c, w in zip(ctx, words.words)], add_special_tokens=False)
    w_len, w_ids, w_head, w_first, w_last = [], [], [], [], []
    for w, c, enc in zip(words.words, ctx, encs):
        ids, k = enc.ids, len(ctx_ids[c])
        if ids[:k] != ctx_ids[c]:
            return None  # the context merged into the word
        head = enc.char_to_token(1)  # the word's first character (after the 1-char context)
        t0 = enc.char_to_token(1 + (w[:1] == " "))  # the first character after a leading space
        t1 = enc.char_to_token(len(w))  # the word's last character
        w_ids.extend(ids[k:])
        w_len.append(len(ids) - k)
        w_head.append(-1 - k if head is None else head - k)
        w_first.append(-1 - k if t0 is None else t0 - k)
        w_last.append(-1 - k if t1 is None else t1 + 1 - k)
    w_len = np.asarray(w_len, dtype=np.int64)
    w_offsets = np.zeros(len(w_len) + 1, dtype=np.int32)
    np.cumsum(w_len, out=w_offsets[1:])
    word_lists = pa.ListArray.from_arrays(pa.array(w_offsets), pa.array(w_ids, pa.int32()))

    seq_tok = w_len[seq]
    first_word = np.cumsum(n_words) - n_words  # where each segment's words start in seq
    length = np.zeros(len(strings), dtype=np.int64)
    nz = n_words > 0
    if len(seq):
        length[nz] = np.add.reduceat(seq_tok, first_word[nz])
    offsets = np.zeros(len(strings) + 1, dtype=np.int64)
    np.cumsum(length, out=offsets[1:])
    lists = pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)),
                                     word_lists.take(pa.array(seq)).flatten())

    rel = np.full((len(strings), 3), -1, dtype=np.int64)
    values = np.array(sorted(i for i in segs.values if n_words[i] > 0), dtype=np.int64)
    if len(values):
        tok_before = np.cumsum(seq_tok) - seq_tok  # tokens before each word of seq, overall
        first, last_at = seq[first_word[values]], first_word[values] + n_words[values] - 1
        last = seq[last_at]
        w_head, w_first, w_last = (np.asarray(x, dtype=np.int64) for x in (w_head, w_first, w_last))
        if (w_head[first] < 0).any() or (w_first[first] < 0).any() or (w_last[last] < 1).any():
            return None  # a value character maps to no token: let encode_spans say so
        rel[values, 0] = w_head[first]
        rel[values, 1] = w_first[first]
        rel[values, 2] = tok_before[last_at] - offsets[values] + w_last[last]
    return SegmentTokens(lists=lists, length=length, rel=rel)
