"""Manipulation tasks (Part 3.2): every answer against the people table, splits, hints, the
luckiness table, reversed bios, and one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from knowlab.data.schema import MONTHS
from knowlab.data.tasks import (
    FAMILIES, TASKS, TaskConfig, family_tasks, luckiness_table, read_luckiness, resolve_tasks, write_tasks,
)
from knowlab.errors import KnowlabError

from conftest import make_dataset


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    # Three values per attribute: several people share a (major, university, company), so some
    # inverse questions have more than one right answer.
    return make_dataset(tmp_path_factory.mktemp("data"), "ds", people=40, values_per_attribute=3)


@pytest.fixture(scope="module")
def tasks_dir(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("tasks") / "all"
    write_tasks(dataset, out, TaskConfig(train_people=12, seed=3))
    return out


def rows_of(folder):
    return pq.read_table(folder / "qa.parquet").to_pylist()


def people_of(folder):
    return {p["id"]: p for p in pq.read_table(folder / "people.parquet").to_pylist()}


def expected(task: str, a: dict, b: dict | None, luck: dict) -> tuple[str, str]:
    """(answer, hint) recomputed from the people table, independently of knowlab.data.tasks."""
    month = lambda p: MONTHS[p["birth_month"] - 1]  # noqa: E731
    yes = lambda f: "Yes" if f else "No"  # noqa: E731
    m, la = a["birth_month"], luck[a["major"]]
    if task in ("birth_date", "birth_city", "university", "major", "company", "company_city"):
        return str(a[task]), ""
    if task == "birth_day":
        return str(a["birth_day"]), ""
    if task == "birth_year":
        return str(a["birth_year"]), ""
    if "+" in task:
        first, second = task.split("+")
        return f"{a[first]}; {a[second]}", ""
    if task == "month_mod2":
        return yes(m in (2, 4, 6, 8, 10, 12)), month(a)
    if task == "month_mod6":
        return str(m % 6), month(a)
    if task == "month_mod12":
        return str(m), month(a)
    if task.startswith("luck_mod"):
        return str(la % int(task[len("luck_mod"):])), a["major"]
    if task.startswith("month_"):
        hint = f"{month(a)}; {month(b)}"
        return (yes(m > b["birth_month"]) if task == "month_later" else str(m - b["birth_month"])), hint
    if task.startswith("luck_"):
        lb = luck[b["major"]]
        return (yes(la > lb) if task == "luck_later" else str(la - lb)), f"{a['major']}; {b['major']}"
    return (a["first"] if task.endswith("_first") else a["name"]), ""


def test_every_answer_and_hint_recomputed_from_the_people_table(tasks_dir):
    people, luck = people_of(tasks_dir), read_luckiness(tasks_dir)
    rows = rows_of(tasks_dir)
    assert {r["task"] for r in rows} == set(TASKS)
    for r in rows:
        a, b = people[r["person_id"]], people.get(r["other_id"])
        assert (r["answer"], r["hint"]) == expected(r["task"], a, b, luck), r
        assert r["answer"] in r["accepted"]
        if r["family"] == "retrieval":
            assert a["name"] in r["question"] and r["accepted"] == [r["answer"]]
        if r["family"] == "comparison":
            assert r["question"].index(a["name"]) < r["question"].index(b["name"])
            assert a["id"] != b["id"]


def test_inverse_search_accepts_exactly_the_people_who_fit(tasks_dir):
    by_id = people_of(tasks_dir)
    people = list(by_id.values())
    given_attrs = {"bdate": ["birth_date"], "birth": ["birth_date", "birth_city"],
                   "three": ["major", "university", "company"],
                   "four": ["major", "university", "birth_city", "company"],
                   "all": ["major", "university", "birth_date", "birth_city", "company", "company_city"]}
    several = 0
    for r in rows_of(tasks_dir):
        if r["family"] != "inverse":
            continue
        kind, want = r["task"].split("_to_")
        me = by_id[r["person_id"]]
        for attr in given_attrs[kind]:
            assert me[attr] in r["question"]
        fits = {p["first" if want == "first" else "name"] for p in people
                if all(p[k] == me[k] for k in given_attrs[kind])}
        assert set(r["accepted"]) == fits
        several += len(fits) > 1
    assert several  # the small pools make some questions ambiguous, as bdate_* is in the paper


def test_splits_follow_the_paper(dataset, tasks_dir, tmp_path):
    people = people_of(tasks_dir)
    rows = rows_of(tasks_dir)
    for r in rows:
        if r["family"] in ("retrieval", "inverse"):
            assert r["split"] == people[r["person_id"]]["split"]
        else:  # classification and comparison populations are P_train and P_test subsets
            assert people[r["person_id"]]["split"] == r["split"]
            if r["other_id"] >= 0:
                assert people[r["other_id"]]["split"] == r["split"]  # pairs stay within one split
    n_test = sum(p["split"] == "test" for p in people.values())
    month = [r for r in rows if r["task"] == "month_mod2"]
    assert len({r["person_id"] for r in month if r["split"] == "test"}) == n_test
    assert len({r["person_id"] for r in month if r["split"] == "train"}) == 12

    # a growing training population contains the smaller one; the test rows never change
    big = tmp_path / "big"
    write_tasks(dataset, big, TaskConfig(tasks="classification,comparison", train_people=18, seed=3))
    small_rows = [r for r in rows if r["family"] in ("classification", "comparison")]
    big_rows = rows_of(big)

    def pick(rs, split):
        return [(r["task"], r["person_id"], r["other_id"], r["question"]) for r in rs if r["split"] == split]

    assert pick(small_rows, "test") == pick(big_rows, "test")
    train_small = {r["person_id"] for r in small_rows if r["split"] == "train"}
    train_big = {r["person_id"] for r in big_rows if r["split"] == "train"}
    assert train_small < train_big and len(train_big) == 18


def test_hint_mixing_is_half_and_half_and_deterministic(dataset, tasks_dir, tmp_path):
    rows = rows_of(tasks_dir)
    for task in TASKS.values():
        train = [r for r in rows if r["task"] == task.name and r["split"] == "train"]
        hinted = sum(r["with_hint"] for r in train)
        assert hinted == (len(train) // 2 if task.hint else 0), task.name
        assert not any(r["with_hint"] for r in rows if r["split"] == "test")
    for r in rows:
        if r["with_hint"]:
            assert r["prompt"] == r["question"] + " Hint:"
            assert r["text"] == f"{r['question']} Hint: {r['hint']}. Answer: {r['answer']}."
        else:
            assert r["prompt"] == r["question"] + " Answer:"
            assert r["text"] == f"{r['question']} Answer: {r['answer']}."
    again = tmp_path / "again"
    write_tasks(dataset, again, TaskConfig(train_people=12, seed=3))
    assert rows_of(again) == rows
    none = tmp_path / "none"
    write_tasks(dataset, none, TaskConfig(tasks="classification", hints="none", seed=3))
    assert not any(r["with_hint"] for r in rows_of(none))


def test_tokens_are_the_text_and_the_prompt_a_prefix(tasks_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tasks_dir / "tokenizer"))
    for r in rows_of(tasks_dir)[::7]:  # byte-level BPE adds a prefix space, as in qa.parquet
        assert tok.decode(r["input_ids"]) == " " + r["text"]
        assert tok.decode(r["input_ids"][: r["answer_tok_start"]]) == " " + r["prompt"]


def test_task_folder_loads_with_datasets_and_feeds_finetuning(tasks_dir):
    import datasets

    from knowlab.data.dataset import Dataset
    from knowlab.train.finetune import qa_examples

    loaded = datasets.load_dataset("parquet", data_files=str(tasks_dir / "qa.parquet"))["train"]
    assert loaded.num_rows == len(rows_of(tasks_dir)) and "hint" in loaded.column_names
    examples = qa_examples(Dataset(tasks_dir), "train")
    assert len(examples) == sum(r["split"] == "train" for r in rows_of(tasks_dir))


def test_luckiness_table_is_a_seeded_permutation_saved_with_the_tasks(tasks_dir):
    table = luckiness_table(3)
    assert sorted(table.values()) == list(range(len(table))) == list(range(100))
    assert table == luckiness_table(3) == read_luckiness(tasks_dir)
    assert table != luckiness_table(4)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_luckiness_depends_only_on_the_seed(seed):
    assert luckiness_table(seed) == luckiness_table(seed)
    assert sorted(luckiness_table(seed).values()) == list(range(100))


def test_task_names_and_families():
    assert resolve_tasks("comparison") == family_tasks("comparison") == [
        "month_later", "month_diff", "luck_later", "luck_diff"]
    assert len(resolve_tasks(None)) == 6 + 8 + 6 + 4 + 10
    assert resolve_tasks(["month_mod2", "classification"])[0] == "month_mod2"
    assert {TASKS[t].family for t in resolve_tasks(",".join(FAMILIES))} == set(FAMILIES)
    for bad in ("sorting", "", "retrieval,sorting"):
        with pytest.raises(KnowlabError):
            resolve_tasks(bad)
    with pytest.raises(KnowlabError, match="train_people"):
        TaskConfig(train_people=-1).validate()


def test_too_large_training_population_is_an_error(dataset, tmp_path):
    with pytest.raises(KnowlabError, match="only 20 P_train"):
        write_tasks(dataset, tmp_path / "x", TaskConfig(tasks="classification", train_people=21))


# ---- reversed bios ------------------------------------------------------------------------------

@settings(max_examples=12, deadline=None)
@given(variant=st.sampled_from(["reverse1", "reverse2", "reverse6", "permute+reverse6", "multi2+reverse3",
                                "multi1+permute+reverse5"]),
       seed=st.integers(0, 1000))
def test_reversed_bios_keep_every_fact_and_hold_the_name_back(variant, seed):
    from knowlab.config import from_dict
    from knowlab.data.bios import Renderer, fresh_entry
    from knowlab.data.config import DataConfig
    from knowlab.data.dataset import generate
    from knowlab.data.schema import ATTRIBUTES
    from knowlab.data.spec import parse_spec

    spec = parse_spec(variant)
    g = generate(from_dict(DataConfig, {"people": 4, "variant": variant, "seed": seed}))
    people = {p.id: p for p in g.people}
    renderer = Renderer()
    rng = np.random.default_rng(seed)
    entries = g.entries + [fresh_entry(p, spec, rng, renderer) for p in g.people]  # both renderers
    assert len(g.entries) == 4 * spec.entries
    for e in entries:
        p = people[e.person_id]
        for attr in ATTRIBUTES:  # every fact, at its recorded span
            start, end = e.spans[attr]
            assert e.text[start:end] == p.value(attr)
        assert e.text.count(p.name) == 1
        assert e.text.startswith(("The person", "the person")) or "the person" in e.text.split(". ")[0]
        at = e.text.index(p.name)
        slot_end = [e.spans[ATTRIBUTES[a]][1] for a in e.order]  # end of each sentence's value
        if spec.reverse == 6:
            assert e.text.endswith(f" The person's name is {p.name}.") and at > max(slot_end)
        else:  # the name first appears in sentence reverse + 1
            assert at > slot_end[spec.reverse - 1]
            if spec.reverse + 1 < len(ATTRIBUTES):
                assert at < e.spans[ATTRIBUTES[e.order[spec.reverse + 1]]][0]
        if not spec.permute:
            assert list(e.order) == list(range(len(ATTRIBUTES)))


def test_reverse_spec_names_and_defaults():
    from knowlab.data.spec import REVERSE_VARIANTS, parse_spec

    for name in REVERSE_VARIANTS:
        spec = parse_spec(name)
        assert spec.name == name and (spec.base, spec.entries) == ("multi", 5)
    assert parse_spec("multi5+permute+reverse6").name == "permute+reverse6"
    assert parse_spec("multi2+reverse1").name == "multi2+reverse1"
    assert parse_spec("multi5+permute").reverse == 0 and parse_spec("multi5+permute").name == "multi5+permute"


# ---- one-line errors from the CLI -----------------------------------------------------------------

def knowlab(*args):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.run([sys.executable, "-m", "knowlab.cli", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def test_bad_task_names_and_variants_are_one_line(dataset, tmp_path):
    cases = [
        (["data", "tasks", str(dataset), "--out", str(tmp_path / "t"), "--tasks", "retrieval,sorting"], "unknown task 'sorting'"),
        (["data", "tasks", str(dataset), "--out", str(tmp_path / "t"), "--hints", "some"], "'some' is not valid"),
        (["data", "tasks", str(tmp_path), "--out", str(tmp_path / "t")], "not a knowlab dataset folder"),
        (["data", "generate", "--out", str(tmp_path / "d"), "--people", "5", "--variant", "reverse7"], "reverse7"),
        (["data", "generate", "--out", str(tmp_path / "d"), "--people", "5", "--variant", "single+reverse1"],
         "built on multiM"),
        (["data", "generate", "--out", str(tmp_path / "d"), "--people", "5", "--variant", "reverse6+fullname"],
         "cannot be combined"),
    ]
    for argv, message in cases:
        r = knowlab(*argv)
        assert r.returncode == 2, (argv, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0] and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "t").exists() and not (tmp_path / "d").exists()
