"""Dataset folders: QA, splits, token spans, determinism, offline loading, celebrity groups, CLI."""

import json
import subprocess
import sys

import pytest

from conftest import gpt2_format_tokenizer, make_dataset
from knowlab.data.dataset import Dataset
from knowlab.data.schema import ATTRIBUTES, QUESTIONS


def test_qa_answers_equal_the_profile_and_splits_are_halves(tiny_dataset):
    ds = Dataset(tiny_dataset)
    people = {p["id"]: p for p in ds.people.to_pylist()}
    qa = ds.qa.to_pylist()
    assert len(qa) == 6 * len(people)
    for q in qa:
        p = people[q["person_id"]]
        assert q["answer"] == p[q["attribute"]]
        assert q["question"] == QUESTIONS[q["attribute"]].format(name=p["name"])
        assert q["text"] == f"{q['question']} Answer: {q['answer']}."
        assert q["split"] == p["split"]
    splits = [p["split"] for p in people.values()]
    assert splits.count("train") == splits.count("test") == 20


def test_token_spans_point_at_the_values(tiny_dataset):
    ds = Dataset(tiny_dataset)
    tok = ds.tokenizer
    for row in ds.bios.to_pylist():
        assert tok.decode(row["input_ids"]).strip() == row["text"]
        for attr in ATTRIBUTES:
            value = row["text"][row[f"{attr}_start"]:row[f"{attr}_end"]]
            ids = row["input_ids"][row[f"{attr}_tok_start"]:row[f"{attr}_tok_end"]]
            assert tok.decode(ids).strip() == value
    for q in ds.qa.to_pylist():
        assert tok.decode(q["input_ids"][q["answer_tok_start"]:]).strip() == q["answer"] + "."
        # the prompt tokenizes to the same prefix: what the model sees at evaluation is what it trained on
        assert tok(q["prompt"], add_special_tokens=False)["input_ids"] == q["input_ids"][:q["answer_tok_start"]]


def test_same_config_and_seed_give_byte_identical_files(tmp_path):
    a = make_dataset(tmp_path, "a", variant="multi2+permute")
    b = make_dataset(tmp_path, "b", variant="multi2+permute")
    ma, mb = (json.loads((d / "manifest.json").read_text()) for d in (a, b))
    assert ma["files"] == mb["files"]
    for name in ma["files"]:
        assert (a / name).read_bytes() == (b / name).read_bytes()
    c = make_dataset(tmp_path, "c", variant="multi2+permute", seed=1)
    assert json.loads((c / "manifest.json").read_text())["files"]["bios.parquet"] != ma["files"]["bios.parquet"]


def test_loads_offline_with_datasets_and_transformers(tiny_dataset):
    import datasets
    from transformers import AutoTokenizer

    qa = datasets.load_dataset(str(tiny_dataset), "qa", split="train")
    assert len(qa) == 240 and "answer" in qa.column_names
    bios = datasets.load_dataset("parquet", data_files=str(tiny_dataset / "bios.parquet"), split="train")
    assert len(bios) == 40
    tok = AutoTokenizer.from_pretrained(str(tiny_dataset / "tokenizer"))
    assert tok.eos_token == "<|endoftext|>"


def test_values_per_attribute_keeps_k_values_each_and_leaves_the_default_alone(tmp_path):
    from knowlab.data.config import DataConfig
    from knowlab.data.dataset import generate_columns
    from knowlab.data.pools import load_pools

    people = generate_columns(DataConfig(people=300, values_per_attribute=7)).people
    pools = load_pools()
    for attr, pool in (("birth_city", "cities"), ("university", "universities"),
                       ("major", "majors"), ("company", "companies")):
        assert len(getattr(people.pools, pool)) == 7
        values = {getattr(p, attr) for p in people.persons()}
        assert len(values) == 7 and values <= set(getattr(pools, pool))
    by_company = {p.company: p.company_city for p in people.persons()}
    assert all(pools.company_hq[pools.companies.index(c)] == city for c, city in by_company.items())
    # The full pools draw exactly what they drew before the option existed.
    full = generate_columns(DataConfig(people=300)).people
    assert full.pools is pools and len({p.birth_city for p in full.persons()}) > 7


def test_celebrity_and_minority_groups(tmp_path):
    d = make_dataset(tmp_path, "cel", people=20, variant="single+permute1", celebrities=10,
                     celebrity_variant="multi5+permute")
    ds = Dataset(d)
    people = ds.people.to_pylist()
    cel = [p for p in people if p["group"] == "celebrity"]
    mino = [p for p in people if p["group"] == "minority"]
    assert len(cel) == 10 and len(mino) == 20
    assert not {p["name"] for p in cel} & {p["name"] for p in mino}
    assert all(p["split"] == "train" for p in cel) and all(p["split"] == "test" for p in mino)
    bios = ds.bios.to_pylist()
    assert sum(b["group"] == "celebrity" for b in bios) == 50
    assert sum(b["group"] == "minority" for b in bios) == 20


def test_a_gpt2_format_tokenizer_folder_gives_right_spans_and_answers(tmp_path):
    """data.tokenizer=PATH: GPT-2's folder layout (no prefix space, so a text's first word has no
    leading space; every value and answer follows one)."""
    folder = gpt2_format_tokenizer(tmp_path / "gpt2", [
        "Anya Briar Forger was born on October 2, 1996. She studied Communications at Princeton."] * 4)
    assert {"vocab.json", "merges.txt", "tokenizer.json"} <= {p.name for p in folder.iterdir()}
    ds = Dataset(make_dataset(tmp_path, "d", people=12, variant="multi2+permute", tokenizer=str(folder)))
    tok = ds.tokenizer
    assert type(tok).__name__.startswith("GPT2Tokenizer") and tok.eos_token == "<|endoftext|>"
    assert ds.manifest["config"]["tokenizer"] == str(folder)
    assert "a copy of the tokenizer folder" in (ds.path / "README.md").read_text()
    for row in ds.bios.to_pylist():
        assert tok.decode(row["input_ids"]) == row["text"]
        for attr in ATTRIBUTES:
            ids = row["input_ids"][row[f"{attr}_tok_start"]:row[f"{attr}_tok_end"]]
            assert tok.decode(ids).strip() == row["text"][row[f"{attr}_start"]:row[f"{attr}_end"]]
    for q in ds.qa.to_pylist():
        # the answer starts at its space, and the prompt tokenizes to the tokens before it
        assert tok.decode(q["input_ids"][q["answer_tok_start"]:]) == f" {q['answer']}."
        assert tok(q["prompt"], add_special_tokens=False)["input_ids"] == q["input_ids"][:q["answer_tok_start"]]


def test_the_card_gives_the_vocabulary_the_bpe_made(tmp_path):
    ds = Dataset(make_dataset(tmp_path, "d", people=10, vocab_size=30000))
    made = ds.manifest["counts"]["vocab_size"]
    assert made < 30000 and f"({made:,} tokens; vocab_size 30,000 was the ceiling)" in (ds.path / "README.md").read_text()


def test_bad_tokenizer_folders_are_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    for path, needle in ((tmp_path / "nope", "tokenizer folder not found"),
                         (tmp_path / "empty", "not an HF tokenizer folder")):
        r = _cli("data", "generate", "--people", "10", "--out", str(tmp_path / "out"), f"tokenizer={path}")
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1 and needle in lines[0], r.stderr
        assert not (tmp_path / "out").exists()


def test_jsonl_export(tiny_dataset, tmp_path):
    import datasets

    from knowlab.data.export import export_jsonl

    export_jsonl(tiny_dataset, tmp_path / "j")
    qa = datasets.load_dataset("json", data_files=str(tmp_path / "j" / "qa.jsonl"), split="train")
    assert len(qa) == 240


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "knowlab.cli", *args], capture_output=True, text=True, cwd=cwd)


@pytest.mark.parametrize("args,needle", [
    (["--people", "10", "--variant", "multi5+shuffle"], "unknown augmentation part 'shuffle'"),
    (["--people", "0"], "people must be at least 1"),
    (["--people", "10", "train_fraction=1.5"], "train_fraction must be within [0, 1]"),
    (["--people", "10", "nonsense=1"], "unknown config key 'nonsense'"),
    (["--people", "10", "vocab_size=abc"], "vocab_size: expected an integer"),
    (["--people", "200000000"], "exceeds the 160,000,000 distinct full names"),
    (["--people", "10", "--config", "/nonexistent.yaml"], "config file not found"),
    (["--people", "10", "values_per_attribute=101"], "values_per_attribute must be 0 (full pools) or 1..100"),
])
def test_bad_input_is_one_line_exit_2_and_no_output(tmp_path, args, needle):
    out = tmp_path / "out"
    r = _cli("data", "generate", "--out", str(out), *args)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in r.stderr
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir()]  # no temp folder left behind either


def test_cli_generate_and_show(tmp_path):
    out = tmp_path / "d"
    r = _cli("data", "generate", "--people", "12", "--variant", "multi2+fullname", "--out", str(out), "vocab_size=600")
    assert r.returncode == 0, r.stderr
    assert "12 people" in r.stdout
    r = _cli("data", "show", str(out))
    assert r.returncode == 0 and "multi2+fullname" in r.stdout and "Answer:" in r.stdout
    r = _cli("data", "generate", "--people", "12", "--out", str(out))
    assert r.returncode == 2 and "already exists" in r.stderr
    r = _cli("data", "show", str(tmp_path))
    assert r.returncode == 2 and "not a knowlab dataset folder" in r.stderr
