"""The Parquet tables of a dataset folder, built from generated `Columns`.

Token ids are gathered per segment (`tokenizer.SegmentTokens`) when the tokenizer allows it and
a sample of rows agrees with whole-text tokenization; otherwise whole texts are tokenized. Bios
and QAs are written in row groups, each tokenized just before it is written, so memory holds
one row group's token ids at a time.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from knowlab.data.bios import BioColumns
from knowlab.data.people import PRONOUNS, PeopleColumns
from knowlab.data.plans import NAME_MARK
from knowlab.data.schema import ANSWER_PREFIX, ATTRIBUTES, QUESTIONS
from knowlab.data.tokenizer import SegmentTokens, encode_spans, segment_tokens

if TYPE_CHECKING:  # dataset.py builds Columns and imports this module
    from knowlab.data.dataset import Columns

CHUNK_ROWS = 100_000  # rows per Parquet row group of bios.parquet and qa.parquet
CHECK_ROWS = 1000  # bios and QAs tokenized whole to confirm the per-segment token ids


def people_table(people: PeopleColumns, names: list[str]) -> pa.Table:
    p = people.pools

    def take(pool, idx):
        return pa.array(pool, pa.string()).take(pa.array(np.asarray(idx, dtype=np.int64)))

    date_codes, date_strings = people.dates("en")
    return pa.table({
        "id": pa.array(people.id, pa.int64()),
        "name": pa.array(names, pa.string()),
        "first": take(p.first, people.first),
        "middle": take(p.middle, people.middle),
        "last": take(p.last, people.last),
        "gender": take(("male", "female"), people.female),
        "pronoun": take(PRONOUNS, people.pronoun),
        "birth_date": take(date_strings, date_codes),
        "birth_year": pa.array(people.birth_year, pa.int64()),
        "birth_month": pa.array(people.birth_month, pa.int64()),
        "birth_day": pa.array(people.birth_day, pa.int64()),
        "birth_city": take(p.cities, people.birth_city),
        "university": take(p.universities, people.university),
        "major": take(p.majors, people.major),
        "company": take(p.companies, people.company),
        "company_city": take(p.company_hq, people.company),
        "split": pa.array(people.split.tolist(), pa.string()),
        "group": pa.array(people.group.tolist(), pa.string()),
    })


def _list_array(values, offsets: np.ndarray, type_) -> pa.Array:
    if not isinstance(values, pa.Array):
        values = pa.array(values, type_)
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), values.cast(type_))


def _flatten(ids: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    lens = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
    offsets = np.zeros(len(ids) + 1, dtype=np.int64)
    np.cumsum(lens, out=offsets[1:])
    flat = np.fromiter((t for row in ids for t in row), dtype=np.int32, count=int(offsets[-1]))
    return flat, offsets


class RowTokens:
    """Token ids and value token spans of rows of segments: gathered per segment when
    `segment_tokens` allows it (and a sample agrees with whole-text tokenization), otherwise
    by tokenizing the texts (`encode_spans`)."""

    def __init__(self, tok, cols: Columns, words=None):
        self.tok, self.cols = tok, cols
        self.seconds = 0.0  # spent in bios() and qa() after construction
        self.seg_tokens: SegmentTokens | None = segment_tokens(tok, cols.segs, words)
        if self.seg_tokens is not None and not self._agrees():
            warnings.warn("per-segment token ids disagree with whole-text tokenization; "
                          "tokenizing whole texts instead (slower)", stacklevel=2)
            self.seg_tokens = None

    def bios(self, part: BioColumns, texts: pa.Array, fast: bool = True):
        """(flat ids, offsets, (rows, 6, 2) token spans in ATTRIBUTES order)."""
        t0 = time.perf_counter()
        st = self.seg_tokens if fast else None
        try:
            if st is None:
                ids, spans = encode_spans(self.tok, texts.to_pylist(), part.spans.tolist())
                return (*_flatten(ids), np.asarray(spans, dtype=np.int64).reshape(len(part), len(ATTRIBUTES), 2))
            flat_seg = part.seg.reshape(len(part), -1)
            ids, offsets, before = st.gather(flat_seg)
            items = part.value_items()
            vseg = np.take_along_axis(flat_seg, items, axis=1)
            at = np.take_along_axis(before, items, axis=1)
            return ids, offsets, at[:, :, None] + st.rel[vseg][:, :, 1:]
        finally:
            self.seconds += time.perf_counter() - t0

    def qa(self, seg: np.ndarray, value_pos: np.ndarray, texts: pa.Array, fast: bool = True):
        """(flat ids, offsets, answer token start per row)."""
        t0 = time.perf_counter()
        st = self.seg_tokens if fast else None
        try:
            if st is None:
                nchar = self.cols.segs.nchar[seg]
                # The answer span starts at the space after "Answer:", so the prompt's tokens are a
                # prefix (that space is where the answer's segment starts; the text drops its own
                # first space).
                starts = (np.cumsum(nchar, axis=1) - nchar)[np.arange(len(seg)), value_pos] - 1
                lens = pc.utf8_length(texts).to_numpy()
                ids, spans = encode_spans(self.tok, texts.to_pylist(),
                                          [[(a, n - 1)] for a, n in zip(starts.tolist(), lens.tolist())])
                return (*_flatten(ids), np.array([s[0][0] for s in spans], dtype=np.int64))
            ids, offsets, before = st.gather(seg)
            rows = np.arange(len(seg))
            return ids, offsets, before[rows, value_pos] + st.rel[seg[rows, value_pos], 0]
        finally:
            self.seconds += time.perf_counter() - t0

    def _agrees(self) -> bool:
        cols = self.cols

        def same(a, b):
            return all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a, b))

        rows = np.unique(np.linspace(0, len(cols.bios) - 1, min(CHECK_ROWS, len(cols.bios))).astype(np.int64))
        part = cols.bios.take(rows)
        texts = cols.segs.texts(part.seg)
        if not same(self.bios(part, texts, fast=False), self.bios(part, texts)):
            return False
        rows = np.unique(np.linspace(0, len(cols.qa_seg) - 1, min(CHECK_ROWS, len(cols.qa_seg))).astype(np.int64))
        seg, pos = cols.qa_seg[rows], cols.qa_value_pos[rows]
        texts = cols.segs.texts(seg)
        return same(self.qa(seg, pos, texts, fast=False), self.qa(seg, pos, texts))


def bios_parts(cols: Columns, chunk: int = CHUNK_ROWS) -> list[tuple[BioColumns, dict]]:
    """Row groups of bios.parquet, all but their token columns."""
    bios, people = cols.bios, cols.people
    pid = pa.array(people.id.astype(np.int32))
    group = pa.array(people.group.tolist(), pa.string())
    split = pa.array(people.split.tolist(), pa.string())
    parts = []
    for lo in range(0, len(bios), chunk):
        part = bios.take(slice(lo, lo + chunk))
        person = pa.array(part.person)
        parts.append((part, {
            "person_id": pid.take(person),
            "entry": pa.array(part.entry, pa.int16()),
            "group": group.take(person),
            "split": split.take(person),
            "text": cols.segs.texts(part.seg),
            "order": _list_array(part.order.reshape(-1), np.arange(len(part) + 1) * len(ATTRIBUTES), pa.int8()),
        }))
    return parts


def bios_table(part: BioColumns, out: dict, tokens: RowTokens) -> pa.Table:
    ids, offsets, tok_spans = tokens.bios(part, out["text"])
    out["input_ids"] = _list_array(ids, offsets, pa.int32())
    spans, tok_spans = part.spans.astype(np.int32), tok_spans.astype(np.int32)
    for i, attr in enumerate(ATTRIBUTES):
        out[f"{attr}_start"] = pa.array(spans[:, i, 0])
        out[f"{attr}_end"] = pa.array(spans[:, i, 1])
        out[f"{attr}_tok_start"] = pa.array(tok_spans[:, i, 0])
        out[f"{attr}_tok_end"] = pa.array(tok_spans[:, i, 1])
    return pa.table(out)


def qa_parts(cols: Columns, chunk: int = CHUNK_ROWS) -> list[tuple[tuple[np.ndarray, np.ndarray], dict]]:
    """Row groups of qa.parquet, all but their token columns."""
    people, segs = cols.people, cols.segs
    pid = pa.array(people.id.astype(np.int32))
    group = pa.array(people.group.tolist(), pa.string())
    split = pa.array(people.split.tolist(), pa.string())
    names = pa.array(cols.names, pa.string())
    halves = [QUESTIONS[a].format(name=NAME_MARK).split(NAME_MARK) for a in ATTRIBUTES]
    pre, post = pa.array([h[0] for h in halves]), pa.array([h[1] for h in halves])
    attrs = pa.array(list(ATTRIBUTES))
    n_attr = len(ATTRIBUTES)
    parts = []
    for lo in range(0, len(cols.qa_seg), chunk):
        seg, value_pos = cols.qa_seg[lo: lo + chunk], cols.qa_value_pos[lo: lo + chunk]
        rows = np.arange(lo, lo + len(seg))
        person, attr = pa.array(rows // n_attr), pa.array(rows % n_attr)
        question = pc.binary_join_element_wise(pre.take(attr), names.take(person), post.take(attr), "")
        answer = segs.texts(seg[np.arange(len(seg)), value_pos][:, None])  # the value, without its space
        parts.append(((seg, value_pos), {
            "person_id": pid.take(person),
            "attribute": attrs.take(attr),
            "group": group.take(person),
            "split": split.take(person),
            "question": question,
            "answer": answer,
            "prompt": pc.binary_join_element_wise(question, ANSWER_PREFIX, ""),
            "text": segs.texts(seg),
        }))
    return parts


def qa_table(part: tuple[np.ndarray, np.ndarray], out: dict, tokens: RowTokens) -> pa.Table:
    ids, offsets, answer_tok = tokens.qa(*part, out["text"])
    out["input_ids"] = _list_array(ids, offsets, pa.int32())
    out["answer_tok_start"] = pa.array(answer_tok.astype(np.int32))
    return pa.table(out)


def write_parquet(path: Path, parts: list, finish, tokens: RowTokens, bar) -> None:
    """Write row groups, finishing (tokenizing) each just before; frees each part once written."""
    writer = None
    try:
        while parts:
            table = finish(*parts.pop(0), tokens)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
            del table
            bar.update(1)
    finally:
        if writer is not None:
            writer.close()
