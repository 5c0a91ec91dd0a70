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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields
from functools import cached_property
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from knowlab.config import to_dict
from knowlab.data.bios import BioColumns, Entry, Renderer, Segments, entries_from_columns, render_columns, slot_table
from knowlab.data.config import DataConfig
from knowlab.data.people import PeopleColumns, Person, sample_people_columns, split_mask
from knowlab.data.plans import NAME_MARK, VALUE_MARK, Plans, junctions_safe, plan_items
from knowlab.data.pools import load_pools
from knowlab.data.qa import QAItem, qa_items
from knowlab.data.schema import ANSWER_PREFIX, ATTRIBUTES, QUESTIONS
from knowlab.data.spec import parse_spec
from knowlab.data.tables import RowTokens, bios_parts, bios_table, people_table, qa_parts, qa_table, write_parquet
from knowlab.data.tokenizer import load_tokenizer, segment_words, train_tokenizer
from knowlab.errors import KnowlabError
from knowlab.io import atomic_dir, code_version, sha256_file, write_json_atomic, write_text_atomic
from knowlab.progress import progress

FORMAT_VERSION = 1
# Append only: stream i is SeedSequence(seed) child i, so new streams leave old datasets as they were.
_STREAMS = ("people", "celebrities", "split", "bios", "celebrity_bios", "tokenizer", "pools")
QA_TOKENIZER_TEXTS = 6 * 2000  # the first 2,000 people's QAs join the BPE corpus


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
        pq.write_table(people_table(cols.people, cols.names), tmp / "people.parquet")
        bio_groups, qa_groups = bios_parts(cols), qa_parts(cols)
        words = segment_words(cols.segs)
        lap("columns")
        tok = future.result()
        tok.save_pretrained(str(tmp / "tokenizer"))
        lap("tokenizer")
        tokens = RowTokens(tok, cols, words)
        lap("tokenize")
        bar = progress(total=len(bio_groups) + len(qa_groups), desc="bios and QA",
                       disable=None if show_progress else True)
        with bar:  # the two files are written side by side
            qa_done = pool.submit(write_parquet, tmp / "qa.parquet", qa_groups, qa_table, tokens, bar)
            write_parquet(tmp / "bios.parquet", bio_groups, bios_table, tokens, bar)
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
