"""Knowledge manipulation tasks (Part 3.2): retrieval, classification, comparison, inverse search.

`write_tasks` turns a dataset folder (people, bios, tokenizer) into a *task folder*: the same
layout as a dataset folder, but qa.parquet holds task rows instead of the six extraction QAs, so
`knowlab train finetune --data TASKS` trains on them unchanged. A row is one question about one
person (or an ordered pair of people for comparison):

    text (answer mode)  `{question} Answer: {answer}.`
    text (hint mode)    `{question} Hint: {hint}. Answer: {answer}.`

The word right after the question is the *mode marker* (the paper's unspecified token, fn 13):
`Answer:` asks for the answer only, `Hint:` for the hint (the values the answer is computed
from, the paper's chain of thought) and then the answer. The paper writes `hint. answer.`; the
extra `Answer:` lets a scorer find the answer without guessing where the hint ends.

Splits follow the paper. Retrieval and inverse search use the dataset's P_train / P_test people.
Classification and comparison test on all of P_test (fixed) and train on the first
`train_people` people of a seeded shuffle of P_train, so a larger training population contains
every smaller one. Comparison pairs never cross the two populations.
"""

from __future__ import annotations

import os
import shutil
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from knowlab.data.schema import ANSWER_PREFIX, ATTRIBUTES, MONTHS, QUESTIONS
from knowlab.errors import KnowlabError

HINT_PREFIX = " Hint:"  # the mode marker asking for hint + answer (ANSWER_PREFIX: answer only)
SEP = "; "  # joins the values of a dual answer or a comparison hint, as the paper does
FAMILIES = ("retrieval", "classification", "comparison", "inverse")
TASKS_FORMAT_VERSION = 1
# Independent random streams of a task folder: adding one never changes the others.
_STREAMS = {"luckiness": 0, "train_people": 1, "pairs": 2, "hints": 3}

Row = dict  # one person's row of people.parquet


@dataclass(frozen=True)
class Task:
    name: str
    family: str
    question: str  # {name} for one person; {a} and {b} for a pair
    answer: Callable[..., str]  # (person[, other], luck) -> answer
    hint: Callable[..., str] | None = None  # the values the answer is computed from


def _month(p: Row) -> str:
    return MONTHS[p["birth_month"] - 1]


def _yes(flag: bool) -> str:
    return "Yes" if flag else "No"


def _luck_task(p: int) -> Task:
    return Task(f"luck_mod{p}", "classification", f"What is the luckiness of {{name}}'s major modulo {p}?",
                lambda x, luck: str(luck[x["major"]] % p), lambda x, luck: x["major"])


def _dual(name: str, question: str, first: str, second: str) -> Task:
    return Task(name, "retrieval", question, lambda x, luck: f"{x[first]}{SEP}{x[second]}")


# Inverse search (App. D): which attributes the question gives, and how they are worded.
_INVERSE_ENDINGS: dict[str, Callable[[Row], str]] = {
    "bdate": lambda x: f"born on {x['birth_date']}?",
    "birth": lambda x: f"born on {x['birth_date']} in {x['birth_city']}?",
    "three": lambda x: f"who studied {x['major']} at {x['university']} and worked for {x['company']}?",
    "four": lambda x: (f"who studied {x['major']} at {x['university']}, was born in {x['birth_city']}, "
                       f"and worked for {x['company']}?"),
    "all": lambda x: (f"who studied {x['major']} at {x['university']}, was born on {x['birth_date']} in "
                      f"{x['birth_city']}, and worked for {x['company']} at {x['company_city']}?"),
}
# The attributes that decide who else answers an inverse question (several people may).
INVERSE_KEYS: dict[str, tuple[str, ...]] = {
    "bdate": ("birth_date",),
    "birth": ("birth_date", "birth_city"),
    "three": ("major", "university", "company"),
    "four": ("major", "university", "birth_city", "company"),
    "all": ("major", "university", "birth_date", "birth_city", "company", "company_city"),
}


def _inverse(given: str, want: str) -> Task:
    return Task(f"{given}_to_{want}", "inverse", f"Give me the {want} name of the person {{ending}}",
                lambda x, luck: x["first"] if want == "first" else x["name"])


def _full(attr: str) -> Task:
    return Task(attr, "retrieval", QUESTIONS[attr], lambda x, luck: str(x[attr]))


TASKS: dict[str, Task] = {t.name: t for t in [
    # Retrieval ([P] §3, Figure 3): the six full-attribute questions of Part 3.1 (the paper's
    # "single" retrieval, finetuned jointly with the rest, so it can be set against the same
    # model's six-QA extraction), partial, then dual in the order asked.
    *[_full(attr) for attr in ATTRIBUTES],
    Task("birth_day", "retrieval", "What is the birth day of {name}?", lambda x, luck: str(x["birth_day"])),
    Task("birth_year", "retrieval", "What is the birth year of {name}?", lambda x, luck: str(x["birth_year"])),
    _dual("birth_city+company", "Where was {name} born and which company did this person work for?",
          "birth_city", "company"),
    _dual("company+birth_city", "Which company did {name} work for and where was this person born?",
          "company", "birth_city"),
    _dual("university+major", "Which university and what major did {name} study?", "university", "major"),
    _dual("major+university", "What major and which university did {name} study?", "major", "university"),
    _dual("company_city+company", "Where and which company did {name} work for?", "company_city", "company"),
    _dual("company+company_city", "Which company and where did {name} work for?", "company", "company_city"),
    # Classification ([P] §4): the hint is the value the class is computed from.
    Task("month_mod2", "classification", "Was {name} born in an even month?",
         lambda x, luck: _yes(x["birth_month"] % 2 == 0), lambda x, luck: _month(x)),
    Task("month_mod6", "classification", "What is {name}'s birth month mod 6?",
         lambda x, luck: str(x["birth_month"] % 6), lambda x, luck: _month(x)),
    Task("month_mod12", "classification", "What is {name}'s birth month in numerics?",
         lambda x, luck: str(x["birth_month"]), lambda x, luck: _month(x)),
    _luck_task(5), _luck_task(20), _luck_task(100),
    # Comparison ([P] §4, App. C). "Later" is strict, so equal months answer "No" (NOTES-3.2 pitfall 2).
    Task("month_later", "comparison", "Was {a} born in a month in a year later than {b}?",
         lambda x, y, luck: _yes(x["birth_month"] > y["birth_month"]), lambda x, y, luck: _month(x) + SEP + _month(y)),
    Task("month_diff", "comparison", "What is {a}'s birth month minus {b}'s birth month?",
         lambda x, y, luck: str(x["birth_month"] - y["birth_month"]), lambda x, y, luck: _month(x) + SEP + _month(y)),
    Task("luck_later", "comparison", "Did {a} major in a field luckier than {b}?",
         lambda x, y, luck: _yes(luck[x["major"]] > luck[y["major"]]), lambda x, y, luck: x["major"] + SEP + y["major"]),
    Task("luck_diff", "comparison", "How luckier is {a}'s major compared with {b}'s major?",
         lambda x, y, luck: str(luck[x["major"]] - luck[y["major"]]), lambda x, y, luck: x["major"] + SEP + y["major"]),
    # Inverse search ([P] §5, App. D).
    *[_inverse(given, want) for given in _INVERSE_ENDINGS for want in ("first", "full")],
]}


def family_tasks(family: str) -> list[str]:
    return [t.name for t in TASKS.values() if t.family == family]


def resolve_tasks(names: Sequence[str] | str | None) -> list[str]:
    """Task names from task and family names (comma-separated or a list); None = every task."""
    if names is None:
        return list(TASKS)
    if isinstance(names, str):
        names = names.split(",")
    out: list[str] = []
    for name in (n.strip() for n in names):
        if not name:
            continue
        if name in FAMILIES:
            out += family_tasks(name)
        elif name in TASKS:
            out.append(name)
        else:
            raise KnowlabError(f"unknown task '{name}'; valid: the families {', '.join(FAMILIES)} "
                               f"or the tasks {', '.join(TASKS)}")
    if not out:
        raise KnowlabError(f"no tasks given; valid: {', '.join(FAMILIES)}")
    return list(dict.fromkeys(out))


def format_text(question: str, answer: str, hint: str | None = None) -> tuple[str, str]:
    """(prompt, text) of a row: answer mode without a hint, hint mode with one."""
    if hint is None:
        prompt = question + ANSWER_PREFIX
        return prompt, f"{prompt} {answer}."
    prompt = question + HINT_PREFIX
    return prompt, f"{prompt} {hint}.{ANSWER_PREFIX} {answer}."


def _rng(seed: int, stream: str, sub: str = "") -> np.random.Generator:
    return np.random.default_rng([seed, _STREAMS[stream], zlib.crc32(sub.encode())])


def luckiness_table(seed: int, majors: Sequence[str] | None = None) -> dict[str, int]:
    """Each major's fixed luckiness 0..len-1: a seeded permutation over the full majors pool, so
    it does not depend on which majors a (values_per_attribute) dataset happens to use."""
    if majors is None:
        from knowlab.data.pools import load_pools

        majors = load_pools().majors
    values = _rng(seed, "luckiness").permutation(len(majors))
    return {m: int(v) for m, v in zip(majors, values)}


@dataclass
class TaskConfig:
    tasks: str = ",".join(FAMILIES)  # families and/or task names, comma-separated
    # Classification and comparison: size of the training population drawn from P_train
    # (0 = all of P_train). P_test is always the whole test population.
    train_people: int = 0
    pairs: int = 2  # comparison: partners drawn per person (within its own population)
    # Classification and comparison training rows: "mixed" gives half of each task's rows the
    # hint (a seeded half); "none" gives none. Test rows are asked in both modes at evaluation.
    hints: Literal["mixed", "none"] = "mixed"
    seed: int = 0

    def validate(self) -> None:
        resolve_tasks(self.tasks)
        if self.train_people < 0:
            raise KnowlabError(f"train_people must be 0 (all of P_train) or more, got {self.train_people}")
        if self.pairs < 1:
            raise KnowlabError(f"pairs must be at least 1, got {self.pairs}")
        if self.hints not in ("mixed", "none"):
            raise KnowlabError(f"hints must be 'mixed' or 'none', got '{self.hints}'")


def populations(people: list[Row], cfg: TaskConfig) -> dict[str, list[int]]:
    """Row indices of the classification/comparison populations: {"train": ..., "test": ...}."""
    train = [i for i, p in enumerate(people) if p["split"] == "train"]
    test = [i for i, p in enumerate(people) if p["split"] == "test"]
    if cfg.train_people > len(train):
        raise KnowlabError(f"train_people={cfg.train_people} but the dataset has only {len(train)} P_train people")
    order = _rng(cfg.seed, "train_people").permutation(len(train))
    keep = order[: cfg.train_people or len(train)]
    return {"train": [train[k] for k in sorted(keep)], "test": test}


def _pairs(members: list[int], count: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """`count` partners for each member, drawn uniformly among the other members."""
    if len(members) < 2:
        return []
    out = []
    for k, i in enumerate(members):
        for j in rng.integers(0, len(members) - 1, size=count).tolist():
            out.append((i, members[j + (j >= k)]))  # skip the member itself
    return out


def build_rows(people: list[Row], cfg: TaskConfig, luck: dict[str, int]) -> Iterator[list[dict]]:
    """The rows (text fields only) of each task in turn: one task's rows are in memory at a time."""
    names = resolve_tasks(cfg.tasks)
    pops = populations(people, cfg)
    # One stream per split and per task, so the fixed test rows stay the same whatever the
    # training population or the task list.
    pairs = {split: _pairs(members, cfg.pairs, _rng(cfg.seed, "pairs", split))
             for split, members in pops.items()}
    # Inverse search: everyone (either split) who fits the question is a right answer.
    matches: dict[str, dict[tuple, list[int]]] = {}
    for given, keys in INVERSE_KEYS.items():
        groups: dict[tuple, list[int]] = defaultdict(list)
        for i, p in enumerate(people):
            groups[tuple(p[k] for k in keys)].append(i)
        matches[given] = groups
    for name in names:
        task = TASKS[name]
        task_rows = []
        if task.family in ("retrieval", "inverse"):
            for i, p in enumerate(people):
                if task.family == "retrieval":
                    question, accepted = task.question.format(name=p["name"]), None
                else:
                    given, want = name.split("_to_")
                    question = task.question.format(ending=_INVERSE_ENDINGS[given](p))
                    who = matches[given][tuple(p[k] for k in INVERSE_KEYS[given])]
                    accepted = sorted({people[j]["first" if want == "first" else "name"] for j in who})
                task_rows.append(_row(task, p, None, p["split"], question, task.answer(p, luck), "", accepted))
        elif task.family == "classification":
            for split, members in pops.items():
                for i in members:
                    p = people[i]
                    task_rows.append(_row(task, p, None, split, task.question.format(name=p["name"]),
                                          task.answer(p, luck), task.hint(p, luck)))
        else:
            for split, split_pairs in pairs.items():
                for i, j in split_pairs:
                    a, b = people[i], people[j]
                    task_rows.append(_row(task, a, b, split, task.question.format(a=a["name"], b=b["name"]),
                                          task.answer(a, b, luck), task.hint(a, b, luck)))
        if task.hint is not None and cfg.hints == "mixed":
            train = [r for r in task_rows if r["split"] == "train"]
            for k in _rng(cfg.seed, "hints", name).permutation(len(train))[: len(train) // 2].tolist():
                train[k]["with_hint"] = True
        for r in task_rows:
            r["prompt"], r["text"] = format_text(r["question"], r["answer"], r["hint"] if r["with_hint"] else None)
        yield task_rows


def _row(task: Task, a: Row, b: Row | None, split: str, question: str, answer: str, hint: str,
         accepted: list[str] | None = None) -> dict:
    return {"task": task.name, "family": task.family, "attribute": task.name, "person_id": a["id"],
            "other_id": -1 if b is None else b["id"], "group": a["group"], "split": split,
            "question": question, "hint": hint, "answer": answer, "accepted": accepted or [answer],
            "with_hint": False}


def tokenize_rows(tok, rows: list[dict]) -> None:
    """Add input_ids and answer_tok_start: the token holding the space after the mode marker.

    Byte-level BPE cuts a word before that space, so this is the length of the prompt's own
    tokens (what `eval.qa.prompt_lengths` finds); one pass over the texts, in Rust, suffices.
    """
    encodings = tok.backend_tokenizer.encode_batch([r["text"] for r in rows], add_special_tokens=False)
    for r, enc in zip(rows, encodings):
        r["input_ids"] = enc.ids
        r["answer_tok_start"] = enc.char_to_token(len(r["prompt"]))


_SCHEMA = pa.schema([
    ("task", pa.string()), ("family", pa.string()), ("attribute", pa.string()),
    ("person_id", pa.int64()), ("other_id", pa.int64()), ("group", pa.string()), ("split", pa.string()),
    ("question", pa.string()), ("hint", pa.string()), ("answer", pa.string()),
    ("accepted", pa.list_(pa.string())), ("with_hint", pa.bool_()),
    ("prompt", pa.string()), ("text", pa.string()),
    ("input_ids", pa.list_(pa.int32())), ("answer_tok_start", pa.int32()),
])


def _card(source: Path, cfg: TaskConfig, counts: dict[str, int]) -> str:
    return f"""---
configs:
- config_name: tasks
  data_files:
  - split: train
    path: qa.parquet
  default: true
- config_name: people
  data_files:
  - split: train
    path: people.parquet
- config_name: luckiness
  data_files:
  - split: train
    path: luckiness.parquet
---
# knowlab manipulation tasks (Part 3.2)

Task rows built from the dataset `{source}` with seed {cfg.seed}: tasks `{cfg.tasks}`,
training population {cfg.train_people or 'all of P_train'}, hints `{cfg.hints}`.

| file | rows | what |
|---|---|---|
| qa.parquet | {counts['qa']:,} | one question per person or pair: question, hint, answer, accepted answers, split |
| luckiness.parquet | {counts['majors']:,} | each major's fixed luckiness |
| people.parquet, bios.parquet, tokenizer/ | | those of the source dataset |

`{{question}} Answer: {{answer}}.` asks for the answer only; `{{question}} Hint: {{hint}}. Answer: {{answer}}.`
for the hint, then the answer (`with_hint` says which one a training row uses).
"""


def _link_or_copy(src: Path, dst: Path) -> None:
    if src.is_dir():
        shutil.copytree(src, dst)
        return
    try:
        os.link(src, dst)  # bios.parquet can be large; the task folder only passes it through
    except OSError:
        shutil.copy2(src, dst)


def write_tasks(data: str | Path, out: str | Path, cfg: TaskConfig, overwrite: bool = False) -> dict:
    """Write the task folder of `cfg` for the dataset folder `data`; returns its manifest."""
    from knowlab.data.dataset import Dataset
    from knowlab.io import atomic_dir, code_version, sha256_file, write_json_atomic, write_text_atomic

    cfg.validate()
    ds = Dataset(data)
    if "tasks" in ds.manifest:
        raise KnowlabError(f"{ds.path} is a task folder; build tasks from the dataset folder it came from")
    out = Path(out)
    if out.exists() and not overwrite:
        raise KnowlabError(f"output folder already exists: {out} (pass --overwrite to replace it)")
    people = ds.people.to_pylist()
    luck = luckiness_table(cfg.seed)
    unknown = sorted({p["major"] for p in people} - set(luck))
    if unknown:
        raise KnowlabError(f"{ds.path}: major '{unknown[0]}' is not in knowlab's majors pool, so it has no luckiness")
    tok = ds.tokenizer
    n_split = {"train": 0, "test": 0}
    with atomic_dir(out, overwrite=overwrite) as tmp:
        # One row group per task, tokenized and written before the next task is built, so
        # memory holds one task's rows (N people, or N x pairs) at a time.
        with pq.ParquetWriter(tmp / "qa.parquet", _SCHEMA) as writer:
            for rows in build_rows(people, cfg, luck):
                if not rows:
                    continue
                tokenize_rows(tok, rows)
                writer.write_table(pa.Table.from_pylist(rows, schema=_SCHEMA))
                for r in rows:
                    n_split[r["split"]] += 1
        if not sum(n_split.values()):
            raise KnowlabError(f"{ds.path}: the tasks '{cfg.tasks}' give no rows (too few people?)")
        pq.write_table(pa.table({"major": list(luck), "luckiness": list(luck.values())}), tmp / "luckiness.parquet")
        for name in ("people.parquet", "bios.parquet", "tokenizer"):
            if (ds.path / name).exists():
                _link_or_copy(ds.path / name, tmp / name)
        counts = {**ds.manifest.get("counts", {}), "qa": sum(n_split.values()), "qa_train": n_split["train"],
                  "qa_test": n_split["test"], "majors": len(luck)}
        write_text_atomic(tmp / "README.md", _card(ds.path, cfg, counts))
        from knowlab.config import to_dict

        manifest = {
            **{k: v for k, v in ds.manifest.items() if k not in ("files", "counts", "code_version")},
            "tasks": {**to_dict(cfg), "names": resolve_tasks(cfg.tasks), "format_version": TASKS_FORMAT_VERSION,
                      "source": str(ds.path.resolve())},
            "counts": counts,
            "code_version": code_version(),
            "files": {str(p.relative_to(tmp)): sha256_file(p) for p in sorted(tmp.rglob("*")) if p.is_file()},
        }
        write_json_atomic(tmp / "manifest.json", manifest)
    return manifest


def read_luckiness(folder: str | Path) -> dict[str, int]:
    table = pq.read_table(Path(folder) / "luckiness.parquet").to_pydict()
    return dict(zip(table["major"], table["luckiness"]))
