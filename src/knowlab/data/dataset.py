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
from dataclasses import asdict, dataclass, fields
from functools import cached_property
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from knowlab.config import to_dict
from knowlab.data.bios import Entry, Renderer, generate_entries
from knowlab.data.config import DataConfig
from knowlab.data.people import Person, assign_split, sample_people
from knowlab.data.qa import QAItem, qa_items
from knowlab.data.schema import ATTRIBUTES
from knowlab.data.spec import parse_spec
from knowlab.data.tokenizer import encode_spans, load_tokenizer, train_tokenizer
from knowlab.errors import KnowlabError
from knowlab.io import atomic_dir, code_version, sha256_file, write_json_atomic, write_text_atomic
from knowlab.progress import progress

FORMAT_VERSION = 1
_STREAMS = ("people", "celebrities", "split", "bios", "celebrity_bios", "tokenizer")


@dataclass
class Generated:
    people: list[Person]
    entries: list[Entry]
    qa: list[QAItem]


def _rngs(seed: int) -> dict[str, np.random.Generator]:
    """Independent streams, so adding celebrities does not change the minority's bios."""
    children = np.random.SeedSequence(seed).spawn(len(_STREAMS))
    return {name: np.random.default_rng(s) for name, s in zip(_STREAMS, children)}


def generate(cfg: DataConfig, show_progress: bool = False) -> Generated:
    rng = _rngs(cfg.seed)
    total = cfg.people + cfg.celebrities
    everyone = sample_people(total, rng["people"], cfg.pronouns)
    if cfg.celebrities:
        # The first draws are the minority, so the minority's names do not depend on how many
        # celebrities there are only through the shared name pool (names stay disjoint).
        minority = [_with(p, group="minority") for p in everyone[: cfg.people]]
        celebs = [_with(p, group="celebrity", split="train") for p in everyone[cfg.people :]]
        minority = assign_split(minority, cfg.minority_train_fraction, rng["split"])
        people = minority + celebs
    else:
        people = assign_split(everyone, cfg.train_fraction, rng["split"])

    entries: list[Entry] = []
    groups = [(cfg.variant, [p for p in people if p.group != "celebrity"], rng["bios"])]
    if cfg.celebrities:
        groups.append((cfg.celebrity_variant, [p for p in people if p.group == "celebrity"], rng["celebrity_bios"]))
    for spec_text, members, group_rng in groups:
        spec = parse_spec(spec_text)
        it = generate_entries(members, spec, group_rng, Renderer("fr" if spec.french else "en"))
        entries.extend(progress(it, total=len(members) * spec.entries, desc=f"bios {spec.name}", disable=None if show_progress else True))
    qa = [item for p in people for item in qa_items(p)]
    return Generated(people, entries, qa)


def _with(person: Person, **changes) -> Person:
    from dataclasses import replace

    return replace(person, **changes)


def _people_table(people: list[Person]) -> pa.Table:
    cols = {f.name: [getattr(p, f.name) for p in people] for f in fields(Person)}
    cols["name"] = [p.name for p in people]
    cols["birth_date"] = [p.birth_date for p in people]
    order = ["id", "name", "first", "middle", "last", "gender", "pronoun", "birth_date",
             "birth_year", "birth_month", "birth_day", "birth_city", "university", "major",
             "company", "company_city", "split", "group"]
    return pa.table({k: cols[k] for k in order})


def _bios_table(entries: list[Entry], people_by_id: dict[int, Person], tok) -> pa.Table:
    texts = [e.text for e in entries]
    spans = [[e.spans[a] for a in ATTRIBUTES] for e in entries]
    ids, tok_spans = encode_spans(tok, texts, spans)
    cols: dict[str, object] = {
        "person_id": pa.array([e.person_id for e in entries], pa.int32()),
        "entry": pa.array([e.index for e in entries], pa.int16()),
        "group": [people_by_id[e.person_id].group for e in entries],
        "split": [people_by_id[e.person_id].split for e in entries],
        "text": texts,
        "order": pa.array([list(e.order) for e in entries], pa.list_(pa.int8())),
        "input_ids": pa.array(ids, pa.list_(pa.int32())),
    }
    span_arr = np.asarray(spans, dtype=np.int32)  # (entries, 6, 2)
    tok_arr = np.asarray(tok_spans, dtype=np.int32)
    for i, attr in enumerate(ATTRIBUTES):
        cols[f"{attr}_start"] = span_arr[:, i, 0]
        cols[f"{attr}_end"] = span_arr[:, i, 1]
        cols[f"{attr}_tok_start"] = tok_arr[:, i, 0]
        cols[f"{attr}_tok_end"] = tok_arr[:, i, 1]
    return pa.table(cols)


def _qa_table(qa: list[QAItem], people_by_id: dict[int, Person], tok) -> pa.Table:
    texts = [q.text for q in qa]
    # The answer span starts at the space after "Answer:", so the prompt's tokens are a prefix.
    ids, tok_spans = encode_spans(tok, texts, [[(q.answer_start - 1, len(q.text) - 1)] for q in qa])
    return pa.table({
        "person_id": pa.array([q.person_id for q in qa], pa.int32()),
        "attribute": [q.attribute for q in qa],
        "group": [people_by_id[q.person_id].group for q in qa],
        "split": [people_by_id[q.person_id].split for q in qa],
        "question": [q.question for q in qa],
        "answer": [q.answer for q in qa],
        "prompt": [q.prompt for q in qa],
        "text": texts,
        "input_ids": pa.array(ids, pa.list_(pa.int32())),
        "answer_tok_start": pa.array([s[0][0] for s in tok_spans], pa.int32()),
    })


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
| tokenizer/ | | byte-level BPE trained on these bios ({cfg.vocab_size} tokens) |

Load offline: `datasets.load_dataset("<this folder>", "qa")`, or
`datasets.load_dataset("parquet", data_files="<this folder>/qa.parquet")`.
"""


def write_dataset(cfg: DataConfig, out: str | Path, overwrite: bool = False, show_progress: bool = False) -> dict:
    """Generate the dataset of `cfg` into `out`; returns the manifest. Atomic: `out` appears whole."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise KnowlabError(f"output folder already exists: {out} (pass --overwrite to replace it)")
    gen = generate(cfg, show_progress)
    by_id = {p.id: p for p in gen.people}
    with atomic_dir(out, overwrite=overwrite) as tmp:
        if cfg.tokenizer:
            tok = load_tokenizer(cfg.tokenizer)
        else:
            rng = _rngs(cfg.seed)["tokenizer"]
            n = min(cfg.tokenizer_train_texts, len(gen.entries))
            pick = np.sort(rng.choice(len(gen.entries), size=n, replace=False))
            corpus = [gen.entries[i].text for i in pick] + [q.text for q in gen.qa[: 6 * 2000]]
            corpus += [p.name for p in gen.people]  # every name, even unsampled ones
            tok = train_tokenizer(corpus, cfg.vocab_size)
        tok.save_pretrained(str(tmp / "tokenizer"))
        pq.write_table(_people_table(gen.people), tmp / "people.parquet")
        pq.write_table(_bios_table(gen.entries, by_id, tok), tmp / "bios.parquet")
        pq.write_table(_qa_table(gen.qa, by_id, tok), tmp / "qa.parquet")
        counts = {"people": len(gen.people), "bios": len(gen.entries), "qa": len(gen.qa),
                  "vocab_size": len(tok)}
        counts["p_train"] = sum(p.split == "train" for p in gen.people)
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
