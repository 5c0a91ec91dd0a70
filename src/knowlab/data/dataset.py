"""Dataset folders: generate, write (atomically) and load.

Layout of a dataset folder:
    people.parquet  one row per person: names, gender, pronoun, the six values, split, group
    bios.parquet    one row per bio entry: text, input_ids, and for each attribute A the
                    character span [A_start, A_end) and token span [A_tok_start, A_tok_end)
    qa.parquet      six rows per person: question, answer, prompt, text, input_ids,
                    answer_tok_start (index of the first answer token in input_ids)
    tokenizer/      HF tokenizer folder (AutoTokenizer loads it offline)
    README.md       dataset card; its YAML lets `datasets.load_dataset(folder, "bios")` work
    manifest.json   resolved config, seed, counts, sha256 of every file
"""

from __future__ import annotations

import json
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields
from functools import cached_property
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from knowlab.config import to_dict
from knowlab.data.bios import (
    NAME_MARK, VALUE_MARK, BioColumns, Entry, Plans, Renderer, Segments, entries_from_columns,
    junctions_safe, plan_items, render_columns, slot_table,
)
from knowlab.data.config import DataConfig
from knowlab.data.pools import load_pools
from knowlab.data.people import PRONOUNS, PeopleColumns, Person, sample_people_columns, split_mask
from knowlab.data.qa import QAItem, qa_items
from knowlab.data.schema import ANSWER_PREFIX, ATTRIBUTES, QUESTIONS
from knowlab.data.spec import parse_spec
from knowlab.data.tokenizer import (
    SegmentTokens, encode_spans, load_tokenizer, segment_tokens, segment_words, train_tokenizer,
)
from knowlab.errors import KnowlabError
from knowlab.io import atomic_dir, code_version, sha256_file, write_json_atomic, write_text_atomic
from knowlab.progress import progress

FORMAT_VERSION = 1
# Append only: stream i is SeedSequence(seed) child i, so new streams leave old datasets as they were.
_STREAMS = ("people", "celebrities", "split", "bios", "celebrity_bios", "tokenizer", "pools")
CHUNK_ROWS = 100_000  # rows per Parquet row group of bios.parquet and qa.parquet
QA_TOKENIZER_TEXTS = 6 * 2000  # the first 2,000 people's QAs join the BPE corpus
CHECK_ROWS = 1000  # bios and QAs tokenized whole to confirm the per-segment token ids


@dataclass
class Generated:
    people: list[Person]
    entries: list[Entry]
    qa: list[QAItem]


@dataclass
class Columns:
    """A generated dataset before tokenization, as arrays (see `bios.BioColumns`)."""

    people: PeopleColumns  # minority then celebrities, or everyone ("main")
    names: list[str]
    segs: Segments
    bios: BioColumns  # `person` indexes `people`
    qa_seg: np.ndarray  # (6 * people, W) segments of the QA texts, person by person
    qa_value_pos: np.ndarray  # (6 * people,) position of the answer in its row


def _rngs(seed: int) -> dict[str, np.random.Generator]:
    """Independent streams, so adding celebrities does not change the minority's bios."""
    children = np.random.SeedSequence(seed).spawn(len(_STREAMS))
    return {name: np.random.default_rng(s) for name, s in zip(_STREAMS, children)}


def _qa_plans() -> Plans:
    """`{question} Answer: {value}.` per attribute, as plans (kind = attribute index)."""
    literals: dict[str, int] = {"": 0}
    rows = [plan_items(f" {QUESTIONS[a].format(name=NAME_MARK)}{ANSWER_PREFIX} {VALUE_MARK}.", literals)
            for a in ATTRIBUTES]
    return Plans.build(rows, literals, range(len(ATTRIBUTES)), range(len(ATTRIBUTES)))


def generate_columns(cfg: DataConfig) -> Columns:
    """The people, bios and QA segments of `cfg` (deterministic in cfg.seed)."""
    rng = _rngs(cfg.seed)
    total = cfg.people + cfg.celebrities
    pools = load_pools()
    if cfg.values_per_attribute:
        pools = pools.subset(cfg.values_per_attribute, rng["pools"])
    people = sample_people_columns(total, rng["people"], cfg.pronouns, pools)
    if cfg.celebrities:
        # The first draws are the minority, so the minority's names do not depend on how many
        # celebrities there are only through the shared name pool (names stay disjoint).
        is_train = split_mask(cfg.people, cfg.minority_train_fraction, rng["split"])
        people.group = np.array(["minority"] * cfg.people + ["celebrity"] * cfg.celebrities, dtype=object)
        people.split = np.concatenate([np.where(is_train, "train", "test").astype(object),
                                       np.full(cfg.celebrities, "train", dtype=object)])
    else:
        is_train = split_mask(total, cfg.train_fraction, rng["split"])
        people.split = np.where(is_train, "train", "test").astype(object)
    names = people.names()
    segs = Segments()
    name_ids = segs.extend([" " + s for s in names])  # names are distinct: no interning needed

    parts = []
    groups = [(cfg.variant, np.flatnonzero(people.group != "celebrity"), rng["bios"])]
    if cfg.celebrities:
        groups.append((cfg.celebrity_variant, np.flatnonzero(people.group == "celebrity"), rng["celebrity_bios"]))
    for spec_text, rows, group_rng in groups:
        spec = parse_spec(spec_text)
        renderer = Renderer("fr" if spec.french else "en")
        members = people.select(rows)
        cols = render_columns([names[i] for i in rows], members.female, members.pronoun,
                              members.value_codes(renderer.language), spec, group_rng, renderer, segs,
                              name_ids=name_ids[rows])
        cols.person = rows[cols.person]
        parts.append(cols)
    bios = BioColumns.concat(parts)

    # QA: `{question} Answer: {value}.`, always in English, six rows per person.
    plans = _qa_plans()
    values = people.value_codes("en")
    slots = slot_table(segs, names, values, False, False, name_ids)
    if not junctions_safe(plans, names, [v for _, strings in values for v in strings], sentences=False):
        segs.token_safe = False
    kind = np.tile(np.arange(len(ATTRIBUTES)), total)
    qa_seg = plans.fill(kind, np.repeat(np.arange(total, dtype=np.int32), len(ATTRIBUTES)), slots,
                        segs.add_many(plans.literals))
    return Columns(people, names, segs, bios, qa_seg, plans.value_pos[kind])


def generate(cfg: DataConfig, show_progress: bool = False) -> Generated:
    """The dataset of `cfg` as objects (what `write_dataset` writes, before tokenization)."""
    cols = generate_columns(cfg)
    people = cols.people.persons()
    entries = list(entries_from_columns(cols.bios, cols.people.id, cols.segs))
    qa = [item for p in people for item in qa_items(p)]
    return Generated(people, entries, qa)


def _people_table(people: PeopleColumns, names: list[str]) -> pa.Table:
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


class _Tokens:
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


def _bios_parts(cols: Columns, chunk: int = CHUNK_ROWS) -> list[tuple[BioColumns, dict]]:
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


def _bios_table(part: BioColumns, out: dict, tokens: _Tokens) -> pa.Table:
    ids, offsets, tok_spans = tokens.bios(part, out["text"])
    out["input_ids"] = _list_array(ids, offsets, pa.int32())
    spans, tok_spans = part.spans.astype(np.int32), tok_spans.astype(np.int32)
    for i, attr in enumerate(ATTRIBUTES):
        out[f"{attr}_start"] = pa.array(spans[:, i, 0])
        out[f"{attr}_end"] = pa.array(spans[:, i, 1])
        out[f"{attr}_tok_start"] = pa.array(tok_spans[:, i, 0])
        out[f"{attr}_tok_end"] = pa.array(tok_spans[:, i, 1])
    return pa.table(out)


def _qa_parts(cols: Columns, chunk: int = CHUNK_ROWS) -> list[tuple[tuple[np.ndarray, np.ndarray], dict]]:
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


def _qa_table(part: tuple[np.ndarray, np.ndarray], out: dict, tokens: _Tokens) -> pa.Table:
    ids, offsets, answer_tok = tokens.qa(*part, out["text"])
    out["input_ids"] = _list_array(ids, offsets, pa.int32())
    out["answer_tok_start"] = pa.array(answer_tok.astype(np.int32))
    return pa.table(out)


def _write_parquet(path: Path, parts: list, finish, tokens: _Tokens, bar) -> None:
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


def _card(cfg: DataConfig, counts: dict[str, int]) -> str:
    return f"""---
configs:
- config_name: bios
  data_files:
  - split: train
    path: bios.parquet
  default: true
- config_name: qa
  data_files:
  - split: train
    path: qa.parquet
- config_name: people
  data_files:
  - split: train
    path: people.parquet
---
# knowlab bioS dataset: `{cfg.variant}`

Synthetic biographies of {counts['people']:,} fictional people, generated by knowlab
({code_version()}) following Physics of Language Models Part 3.1. Seed {cfg.seed}.

| file | rows | what |
|---|---|---|
| bios.parquet | {counts['bios']:,} | bio entries, with character and token spans of the six attribute values |
| qa.parquet | {counts['qa']:,} | six questions per person: `{{question}} Answer: {{value}}.`; `split` says P_train or P_test |
| people.parquet | {counts['people']:,} | the profiles |
| tokenizer/ | | {_tokenizer_line(cfg, counts)} |

Load offline: `datasets.load_dataset("<this folder>", "qa")`, or
`datasets.load_dataset("parquet", data_files="<this folder>/qa.parquet")`.
"""


def _tokenizer_line(cfg: DataConfig, counts: dict[str, int]) -> str:
    if cfg.tokenizer:
        return f"a copy of the tokenizer folder `{cfg.tokenizer}` ({counts['vocab_size']:,} tokens)"
    # The trainer stops once every word is a token, often below vocab_size: report what it made.
    made = counts["vocab_size"]
    if made == cfg.vocab_size:
        return f"byte-level BPE trained on these bios ({cfg.vocab_size} tokens)"
    return f"byte-level BPE trained on these bios ({made:,} tokens; vocab_size {cfg.vocab_size:,} was the ceiling)"


def tokenizer_corpus(cfg: DataConfig, cols: Columns) -> list[str]:
    """The BPE training texts: sampled bios, the first people's QAs and every full name."""
    rng = _rngs(cfg.seed)["tokenizer"]
    n = min(cfg.tokenizer_train_texts, len(cols.bios))
    pick = np.sort(rng.choice(len(cols.bios), size=n, replace=False))
    corpus = cols.segs.texts(cols.bios.take(pick).seg).to_pylist()
    corpus += cols.segs.texts(cols.qa_seg[:QA_TOKENIZER_TEXTS]).to_pylist()
    return corpus + cols.names  # every name, even unsampled ones


def _batched(texts: list[str], size: int = 100) -> list[str]:
    """Texts joined by spaces, `size` at a time: byte-level BPE sees the very same words (each
    text opens with a non-space, after the added prefix space or the joining one, and ends with
    a non-space), with far fewer items to pass from Python to the trainer."""
    if not all(t and not t[0].isspace() and not t[-1].isspace() for t in texts):
        return texts
    return [" ".join(texts[i: i + size]) for i in range(0, len(texts), size)]


def write_dataset(cfg: DataConfig, out: str | Path, overwrite: bool = False, show_progress: bool = False,
                  timings: dict | None = None) -> dict:
    """Generate the dataset of `cfg` into `out`; returns the manifest. Atomic: `out` appears whole.

    `timings`, if given, receives wall seconds per phase: render (people and bios/QA segments),
    columns (texts and the other non-token columns, while the tokenizer trains in a thread),
    tokenizer (waiting for it, and saving it), tokenize (token ids of the distinct segments, and
    the check against whole texts), write (gathering each row group's token ids and writing both
    Parquet files, side by side), hash; and, overlapping those, tokenizer_train (the training
    itself) and tokenize_rows (the token gathering inside write, summed over both threads).
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise KnowlabError(f"output folder already exists: {out} (pass --overwrite to replace it)")
    if cfg.tokenizer:  # before any work: a wrong path is one line, not a failure minutes later
        load_tokenizer(cfg.tokenizer)
    timings = {} if timings is None else timings
    clock = [time.perf_counter()]

    def lap(name):
        now = time.perf_counter()
        timings[name] = timings.get(name, 0.0) + now - clock[0]
        clock[0] = now

    def train(corpus):
        t0 = time.perf_counter()
        tok = train_tokenizer(_batched(corpus), cfg.vocab_size)
        timings["tokenizer_train"] = time.perf_counter() - t0
        return tok

    cols = generate_columns(cfg)
    lap("render")
    with atomic_dir(out, overwrite=overwrite) as tmp, ThreadPoolExecutor(max_workers=1) as pool:
        # The BPE trains (in Rust, without the GIL) while the texts and other columns are built.
        future = pool.submit(load_tokenizer, cfg.tokenizer) if cfg.tokenizer else \
            pool.submit(train, tokenizer_corpus(cfg, cols))
        pq.write_table(_people_table(cols.people, cols.names), tmp / "people.parquet")
        bios_parts, qa_parts = _bios_parts(cols), _qa_parts(cols)
        words = segment_words(cols.segs)
        lap("columns")
        tok = future.result()
        tok.save_pretrained(str(tmp / "tokenizer"))
        lap("tokenizer")
        tokens = _Tokens(tok, cols, words)
        lap("tokenize")
        bar = progress(total=len(bios_parts) + len(qa_parts), desc="bios and QA",
                       disable=None if show_progress else True)
        with bar:  # the two files are written side by side
            qa_done = pool.submit(_write_parquet, tmp / "qa.parquet", qa_parts, _qa_table, tokens, bar)
            _write_parquet(tmp / "bios.parquet", bios_parts, _bios_table, tokens, bar)
            qa_done.result()
        lap("write")
        timings["tokenize_rows"] = tokens.seconds  # inside "write": gathering rows' token ids (both threads)
        people = cols.people
        counts = {"people": len(people), "bios": len(cols.bios), "qa": len(cols.qa_seg),
                  "vocab_size": len(tok)}
        counts["p_train"] = int((people.split == "train").sum())
        counts["p_test"] = counts["people"] - counts["p_train"]
        write_text_atomic(tmp / "README.md", _card(cfg, counts))
        files = sorted(p for p in tmp.rglob("*") if p.is_file())
        manifest = {
            "format_version": FORMAT_VERSION,
            "kind": "knowlab-dataset",
            "config": to_dict(cfg),
            "seed": cfg.seed,
            "counts": counts,
            "code_version": code_version(),
            "files": {str(p.relative_to(tmp)): sha256_file(p) for p in files},
        }
        write_json_atomic(tmp / "manifest.json", manifest)
        lap("hash")
    return manifest


class Dataset:
    """A generated dataset folder, read lazily."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        mf = self.path / "manifest.json"
        if not mf.is_file():
            raise KnowlabError(f"{self.path}: not a knowlab dataset folder (no manifest.json); create one with 'knowlab data generate'")
        self.manifest = json.loads(mf.read_text())
        if self.manifest.get("kind") != "knowlab-dataset":
            raise KnowlabError(f"{self.path}/manifest.json: not a knowlab dataset manifest")

    @property
    def config(self) -> DataConfig:
        from knowlab.config import from_dict

        return from_dict(DataConfig, self.manifest["config"])

    def table(self, name: str, columns: list[str] | None = None) -> pa.Table:
        return pq.read_table(self.path / f"{name}.parquet", columns=columns)

    @cached_property
    def people(self) -> pa.Table:
        return self.table("people")

    @cached_property
    def bios(self) -> pa.Table:
        return self.table("bios")

    @cached_property
    def qa(self) -> pa.Table:
        return self.table("qa")

    @cached_property
    def tokenizer(self):
        return load_tokenizer(self.path / "tokenizer")

    def person_objects(self) -> list[Person]:
        rows = self.people.to_pylist()
        names = {f.name for f in fields(Person)}
        return [Person(**{k: v for k, v in r.items() if k in names}) for r in rows]


def summary(cfg_or_manifest: dict) -> str:
    return json.dumps(cfg_or_manifest, indent=2)


__all__ = ["DataConfig", "Dataset", "generate", "write_dataset", "asdict"]
