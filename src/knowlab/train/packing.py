"""The pretraining data stream: documents shuffled per epoch, EOS-separated, cut into windows.

Every document (a bio entry, or a P_train QA in mixed training) is followed by EOS. An epoch is
one shuffled pass over the documents, concatenated into a flat int32 array; epochs follow each
other without a gap, and the endless stream is cut into windows. A window holds context + 1
tokens and consecutive windows overlap by one token, so the model reads `context` tokens and
every token of the stream is a next-token target exactly once (nanoGPT's layout).

Shuffling across people matters: with multi5 the five entries of a person would otherwise sit in
one window and the model could copy values from the entry before ([P] App. C samples bio entries
at random). The epoch order is a pure function of (seed, stream, epoch), so the stream position
is just (epoch, cursor) and a resumed run reads exactly the tokens the interrupted one would have.

Mixed training: each window is wholly bios or wholly QAs, picked with probability qa_ratio from
a generator seeded by (seed, step), from two independent streams; QA windows only ever hold
P_train questions. The whole global batch is built on every rank and each rank keeps its rows,
so a run on W processes sees exactly the data of a one-process run at the same global batch.

Per-exposure datasets (Part 3.3's bioS(N), manifest config per_exposure): every epoch renders
fresh entries with `fresh_entry` (new templates, new order): each person gets as many entries per
epoch as their spec has (one for single), so an epoch has the size of the stored bios and
"exposures" mean the same as for the stored variant. The entries are tokenized per epoch.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

BIO_STREAM, QA_STREAM, KIND_STREAM = 1, 2, 3  # seed salts, so the streams are independent


def _rng(seed: int, stream: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, stream, index])


class Source(Protocol):
    n_docs: int

    def epoch_tokens(self, epoch: int) -> np.ndarray: ...


class ShuffledDocs:
    """Fixed documents (token id lists), shuffled anew every epoch."""

    def __init__(self, values: np.ndarray, offsets: np.ndarray, eos: int, seed: int, stream: int):
        n = len(offsets) - 1
        self.n_docs, self.eos, self.seed, self.stream = n, eos, seed, stream
        # Lay out every document with its EOS once; an epoch is then one vectorised gather.
        self.lens = np.diff(offsets).astype(np.int64) + 1
        self.starts = offsets[:-1].astype(np.int64) + np.arange(n)
        flat = np.empty(len(values) + n, dtype=np.int32)
        eos_pos = offsets[1:].astype(np.int64) + np.arange(n)
        keep = np.ones(len(flat), dtype=bool)
        keep[eos_pos] = False
        flat[keep] = values
        flat[eos_pos] = eos
        self.flat = flat

    @classmethod
    def from_arrow(cls, column, eos: int, seed: int, stream: int) -> ShuffledDocs:
        """From a pyarrow list<int32> column (e.g. bios.parquet input_ids)."""
        arr = column.combine_chunks() if hasattr(column, "combine_chunks") else column
        offsets = arr.offsets.to_numpy()
        values = arr.values.to_numpy()[offsets[0] : offsets[-1]]
        return cls(values.astype(np.int32, copy=False), offsets - offsets[0], eos, seed, stream)

    def order(self, epoch: int) -> np.ndarray:
        return _rng(self.seed, self.stream, epoch).permutation(self.n_docs)

    def epoch_tokens(self, epoch: int, with_docs: bool = False):
        perm = self.order(epoch)
        lens = self.lens[perm]
        out_starts = np.cumsum(lens) - lens
        gather = np.arange(int(lens.sum())) + np.repeat(self.starts[perm] - out_starts, lens)
        tokens = self.flat[gather]
        return (tokens, np.repeat(perm, lens)) if with_docs else tokens


class FreshBios:
    """Per-exposure bios: a new rendering of every person's entries in every epoch."""

    def __init__(self, people, specs: dict[str, object], tokenizer, eos: int, seed: int, stream: int = BIO_STREAM):
        from knowlab.data.bios import Renderer

        self.people, self.tokenizer, self.eos, self.seed, self.stream = people, tokenizer, eos, seed, stream
        self.specs = [specs[p.group] for p in people]
        self.renderers = {lang: Renderer(lang) for lang in {"fr" if s.french else "en" for s in self.specs}}
        # doc k of an epoch is person owner[k]; a person with M entries owns M docs.
        self.owner = np.repeat(np.arange(len(people)), [s.entries for s in self.specs])
        self.n_docs = len(self.owner)

    def epoch_texts(self, epoch: int) -> tuple[np.ndarray, list[str]]:
        from knowlab.data.bios import fresh_entry

        rng = _rng(self.seed, self.stream, epoch)
        order = self.owner[rng.permutation(self.n_docs)]
        texts = []
        for i in order:
            spec = self.specs[i]
            renderer = self.renderers["fr" if spec.french else "en"]
            texts.append(fresh_entry(self.people[i], spec, rng, renderer).text)
        return order, texts

    def epoch_tokens(self, epoch: int, with_docs: bool = False):
        order, texts = self.epoch_texts(epoch)
        encs = self.tokenizer.backend_tokenizer.encode_batch(texts, add_special_tokens=False)
        lens = np.fromiter((len(e.ids) + 1 for e in encs), dtype=np.int64, count=len(encs))
        tokens = np.empty(int(lens.sum()), dtype=np.int32)
        pos = 0
        for enc, n in zip(encs, lens):
            tokens[pos : pos + n - 1] = enc.ids
            tokens[pos + n - 1] = self.eos
            pos += n
        return (tokens, np.repeat(order, lens)) if with_docs else tokens


class TokenStream:
    """Endless windows of context + 1 tokens over the epochs of `source`."""

    def __init__(self, source: Source, context: int):
        self.source, self.context = source, context
        self.epoch, self.cursor = 0, 0
        self._cache: dict[int, np.ndarray] = {}

    def _tokens(self, epoch: int) -> np.ndarray:
        # Two epochs cached: a window straddling a boundary reads both, and per-exposure epochs
        # are costly to render.
        if epoch not in self._cache:
            for old in sorted(self._cache)[:-1]:
                del self._cache[old]
            self._cache[epoch] = self.source.epoch_tokens(epoch)
        return self._cache[epoch]

    def _read(self, n: int, advance: int) -> np.ndarray:
        """The next n tokens; the position moves on by `advance` (<= n) only."""
        parts, got = [], 0
        epoch, cursor = self.epoch, self.cursor
        new_pos = None
        while got < n:
            toks = self._tokens(epoch)
            if cursor >= len(toks):
                epoch, cursor = epoch + 1, 0
                continue
            take = min(n - got, len(toks) - cursor)
            if new_pos is None and got + take >= advance:
                end = cursor + advance - got
                new_pos = (epoch + 1, 0) if end >= len(toks) else (epoch, end)
            parts.append(toks[cursor : cursor + take])
            got += take
            cursor += take
        self.epoch, self.cursor = new_pos
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def take(self, n: int) -> np.ndarray:
        """(n, context + 1) int64 windows; window i+1 starts on the last token of window i."""
        if n == 0:
            return np.empty((0, self.context + 1), dtype=np.int64)
        c = self.context
        buf = self._read(n * c + 1, n * c)
        idx = np.arange(n)[:, None] * c + np.arange(c + 1)[None, :]
        return buf[idx].astype(np.int64)

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "cursor": self.cursor}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.cursor = int(state["epoch"]), int(state["cursor"])


class PretrainStream:
    """Global batches of windows: bios, or (mixed training) bios and QAs window by window."""

    def __init__(self, bios: TokenStream, qa: TokenStream | None = None, qa_ratio: float = 0.0, seed: int = 0):
        if qa_ratio > 0 and qa is None:
            raise ValueError("qa_ratio > 0 needs a QA stream")
        self.bios, self.qa, self.qa_ratio, self.seed = bios, qa, qa_ratio, seed

    def is_qa(self, step: int, batch: int) -> np.ndarray:
        if not self.qa_ratio:
            return np.zeros(batch, dtype=bool)
        return _rng(self.seed, KIND_STREAM, step).random(batch) < self.qa_ratio

    def global_batch(self, step: int, batch: int) -> tuple[np.ndarray, np.ndarray]:
        """(windows (batch, context + 1), is_qa (batch,)) for `step`; advances the streams."""
        kinds = self.is_qa(step, batch)
        n_qa = int(kinds.sum())
        out = np.empty((batch, self.bios.context + 1), dtype=np.int64)
        out[~kinds] = self.bios.take(batch - n_qa)
        if n_qa:
            out[kinds] = self.qa.take(n_qa)
        return out, kinds

    def state_dict(self) -> dict:
        state = {"bios": self.bios.state_dict()}
        if self.qa is not None:
            state["qa"] = self.qa.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.bios.load_state_dict(state["bios"])
        if self.qa is not None and "qa" in state:
            self.qa.load_state_dict(state["qa"])


def bio_source(dataset, seed: int) -> Source:
    """Stored bio entries, or fresh renderings when the dataset is per-exposure."""
    tok = dataset.tokenizer
    cfg = dataset.manifest.get("config", {})
    if cfg.get("per_exposure"):
        from knowlab.data.spec import parse_spec

        specs = {"main": parse_spec(cfg.get("variant", "single")),
                 "minority": parse_spec(cfg.get("variant", "single"))}
        if cfg.get("celebrities"):
            specs["celebrity"] = parse_spec(cfg.get("celebrity_variant", "multi5+permute"))
        return FreshBios(dataset.person_objects(), specs, tok, tok.eos_token_id, seed)
    return ShuffledDocs.from_arrow(dataset.bios.column("input_ids"), tok.eos_token_id, seed, BIO_STREAM)


def qa_source(dataset, seed: int) -> ShuffledDocs:
    """P_train QAs only (split == 'train'); P_test questions never reach pretraining."""
    import pyarrow.compute as pc

    qa = dataset.qa
    train = qa.filter(pc.equal(qa.column("split"), "train"))
    if train.num_rows == 0:
        from knowlab.errors import KnowlabError

        raise KnowlabError(f"{dataset.path}: no P_train QAs for mixed training (qa_ratio > 0)")
    return ShuffledDocs.from_arrow(train.column("input_ids"), dataset.tokenizer.eos_token_id, seed, QA_STREAM)


def build_stream(dataset, context: int, seed: int, qa_ratio: float = 0.0) -> PretrainStream:
    bios = TokenStream(bio_source(dataset, seed), context)
    qa = TokenStream(qa_source(dataset, seed), context) if qa_ratio > 0 else None
    return PretrainStream(bios, qa, qa_ratio, seed)
