"""bioR datasets end to end with a deterministic in-process rewriter: the bioS layout, spans,
fullname, rejection sampling, failure reports, resume. Real model backends: test_augment_backends.py."""

import argparse
import json
import re

import pyarrow.parquet as pq
import pytest

from conftest import make_dataset
from knowlab.augment.bior import BiorConfig, _population, bior_prompt, generate_bior, sample_seed
from knowlab.augment.cli import add_bior_arguments, run_bior
from knowlab.augment.rewriter import Rewriter, SamplingParams
from knowlab.config import from_dict
from knowlab.data.config import DataConfig
from knowlab.data.dataset import Dataset
from knowlab.data.schema import ATTRIBUTES
from knowlab.errors import KnowlabError


def data_cfg(**kw) -> DataConfig:
    return from_dict(DataConfig, {"people": 6, "variant": "single", "seed": 0, "vocab_size": 600, **kw})


class Biographer(Rewriter):
    """Writes a correct bio of the person the prompt names, in an order that varies with the seed.
    `bad_first`: the first attempt writes the company city wrong; `never`: names whose bios always
    lack the major; `ordinal_dates`: "2nd October 1996" instead of the canonical date."""

    name = "test-biographer"

    def __init__(self, cfg, bad_first=False, never=(), ordinal_dates=False, stop_after=None):
        super().__init__(SamplingParams())
        self.people = {p.name: p for p in _population(cfg)}
        self.seed = cfg.seed
        self.bad_first, self.never, self.ordinal_dates, self.stop_after = bad_first, set(never), ordinal_dates, stop_after
        self.prompts = []

    def _generate(self, prompts, seeds):
        if self.stop_after is not None and len(self.prompts) >= self.stop_after:
            raise KeyboardInterrupt
        out = []
        for prompt, seed in zip(prompts, seeds):
            self.prompts.append(prompt)
            p = self.people[re.search(r"whose name is (.+?)\. ", prompt).group(1)]
            assert all(p.value(a) in prompt for a in ATTRIBUTES)  # the prompt states every fact
            date = p.birth_date
            if self.ordinal_dates:
                date = f"{p.birth_day}{'th' if p.birth_day > 3 else ['st', 'nd', 'rd'][p.birth_day - 1]} " \
                       f"{date.split()[0]} {p.birth_year}"
            pr = "He" if p.gender == "male" else "She"
            city = p.company_city
            if self.bad_first and seed == sample_seed(self.seed, p.id, 0, 0):
                city = "Atlantis"
            parts = [f"{pr} was born on {date} in {p.birth_city}.",
                     f"{pr} studied {'' if p.name in self.never else p.major} at {p.university}.",
                     f"{pr} works for {p.company} in {city}, where {pr.lower()} loves {'his' if pr == 'He' else 'her'} job."]
            k = seed % 3
            parts = parts[k:] + parts[:k]
            out.append(f"\n  {p.name} is a fictional person. " + " ".join(parts) + "\n")
        return out


def test_bior_folder_has_the_bios_layout_people_and_spans(tmp_path):
    cfg = data_cfg()
    bios_s = make_dataset(tmp_path, "bioS", people=6, vocab_size=600)
    out = tmp_path / "bioR"
    manifest = generate_bior(cfg, Biographer(cfg), out)
    assert manifest["family"] == "bioR" and manifest["counts"]["bios"] == 6 and manifest["counts"]["qa"] == 36
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in bios_s.iterdir())
    r, s = Dataset(out), Dataset(bios_s)
    assert r.config.variant == "single"
    # same schema, same people and splits, same questions as the bioS folder of this config and seed
    for name in ("people", "bios", "qa"):
        assert pq.read_schema(out / f"{name}.parquet") == pq.read_schema(bios_s / f"{name}.parquet")
    assert r.people.equals(s.people)
    cols = ["person_id", "attribute", "question", "answer", "prompt", "text", "split"]
    assert r.table("qa", cols).equals(s.table("qa", cols))
    tok = r.tokenizer
    people = {p["id"]: p for p in r.people.to_pylist()}
    for row in r.bios.to_pylist():
        assert "\n" not in row["text"] and row["text"].startswith(people[row["person_id"]]["name"])
        starts = []
        for attr in ATTRIBUTES:
            value = row["text"][row[f"{attr}_start"]:row[f"{attr}_end"]]
            assert value == people[row["person_id"]][attr]
            assert row["text"].find(value) == row[f"{attr}_start"]  # the first occurrence
            ids = row["input_ids"][row[f"{attr}_tok_start"]:row[f"{attr}_tok_end"]]
            assert tok.decode(ids).strip() == value
            starts.append(row[f"{attr}_start"])
        assert row["order"] == sorted(range(6), key=lambda i: starts[i])
    for q in r.qa.to_pylist():  # QA tokens as bioS: the prompt tokenizes to a prefix
        assert tok(q["prompt"], add_special_tokens=False)["input_ids"] == q["input_ids"][:q["answer_tok_start"]]
    assert "bioR dataset" in (out / "README.md").read_text()
    import datasets

    assert datasets.load_dataset(str(out), "qa", split="train").num_rows == 36  # offline, from the card's YAML
    with pytest.raises(KnowlabError, match="already exists"):
        generate_bior(cfg, Biographer(cfg), out)


def test_multi_copies_fullname_and_rerun_from_cache(tmp_path):
    cfg = data_cfg(variant="multi2+fullname")
    rw = Biographer(cfg)
    manifest = generate_bior(cfg, rw, tmp_path / "r")
    assert manifest["config"]["variant"] == "multi2+fullname" and manifest["counts"]["bios"] == 12
    rows = Dataset(tmp_path / "r").bios.to_pylist()
    assert sorted((b["person_id"], b["entry"]) for b in rows) == [(i, c) for i in range(6) for c in range(2)]
    names = {p.id: p.name for p in _population(cfg)}
    for b in rows:
        assert not re.search(r"\b(he|she|his|her|him)\b", b["text"], re.I), b["text"]
        assert b["text"].count(names[b["person_id"]]) >= 4 and f"{names[b['person_id']]}'s job" in b["text"]
    # copies of a person get different prompts
    assert bior_prompt(_population(cfg)[0], 0, 0) != bior_prompt(_population(cfg)[0], 1, 0)
    # a rerun into a new folder reuses every accepted bio and generation: no model calls
    again = Biographer(cfg)
    manifest2 = generate_bior(cfg, again, tmp_path / "r2", options=BiorConfig(work_dir=str(tmp_path / "r.work")))
    assert again.prompts == [] and (tmp_path / "r2" / "bios.parquet").read_bytes() == (tmp_path / "r" / "bios.parquet").read_bytes()
    assert manifest2["bior"]["generated"] == 0
    # copies/fullname arguments override the variant
    m3 = generate_bior(cfg, Biographer(cfg), tmp_path / "r3", copies=1, fullname=False)
    assert m3["config"]["variant"] == "single" and m3["counts"]["bios"] == 6


def test_rejection_sampling_and_failures_are_reported(tmp_path):
    cfg = data_cfg()
    rw = Biographer(cfg, bad_first=True)
    manifest = generate_bior(cfg, rw, tmp_path / "ok")
    assert manifest["bior"]["attempts_histogram"] == {"2": 6} and len(rw.prompts) == 12
    assert "Atlantis" not in "".join(Dataset(tmp_path / "ok").bios.column("text").to_pylist())

    victim = _population(cfg)[2]
    opts = BiorConfig(max_attempts=3)
    with pytest.raises(KnowlabError, match=r"1 bio\(s\) of 1 people failed .* 3 attempts \(people 2\); see .*failed.jsonl"):
        generate_bior(cfg, Biographer(cfg, never=[victim.name]), tmp_path / "bad", options=opts)
    assert not (tmp_path / "bad").exists()
    failed = [json.loads(line) for line in (tmp_path / "bad.work" / "failed.jsonl").read_text().splitlines()]
    assert [(f["person_id"], f["missing"], f["attempts"]) for f in failed] == [(2, ["major"], 3)]
    # drop: the dataset leaves the person out everywhere; the other bios come from the work folder
    rw = Biographer(cfg, never=[victim.name])
    manifest = generate_bior(cfg, rw, tmp_path / "bad", options=BiorConfig(max_attempts=3, on_failure="drop"))
    assert manifest["counts"]["people"] == 5 and manifest["bior"]["failed_people"] == [2]
    ds = Dataset(tmp_path / "bad")
    assert 2 not in ds.people.column("id").to_pylist() and 2 not in ds.qa.column("person_id").to_pylist()
    assert rw.prompts == []  # every sample, failed ones included, came from the cache


def test_accepted_surface_forms(tmp_path):
    cfg = data_cfg(people=3)
    with pytest.raises(KnowlabError, match="failed the fact check"):
        generate_bior(cfg, Biographer(cfg, ordinal_dates=True), tmp_path / "a", options=BiorConfig(max_attempts=1))
    generate_bior(cfg, Biographer(cfg, ordinal_dates=True), tmp_path / "b",
                  options=BiorConfig(max_attempts=1, date_variants=True))
    ds = Dataset(tmp_path / "b")
    for row, person in zip(ds.bios.to_pylist(), ds.people.to_pylist()):
        written = row["text"][row["birth_date_start"]:row["birth_date_end"]]
        assert written != person["birth_date"] and str(person["birth_year"]) in written
    assert ds.table("qa", ["answer"]).column("answer").to_pylist()[0] == ds.people.to_pylist()[0]["birth_date"]


def test_interrupted_generation_resumes_without_duplicates(tmp_path):
    cfg = data_cfg(variant="multi2")
    opts = BiorConfig(chunk=4)
    with pytest.raises(KeyboardInterrupt):
        generate_bior(cfg, Biographer(cfg, stop_after=4), tmp_path / "r", options=opts)
    work = tmp_path / "r.work" / "rewrites.jsonl"
    lines = work.read_text().splitlines(keepends=True)
    assert len(lines) == 4 and not (tmp_path / "r").exists()
    work.write_text("".join(lines[:3]) + lines[3][:20])  # and the last line was torn
    rw = Biographer(cfg)
    notes = []
    generate_bior(cfg, rw, tmp_path / "r", options=opts, log=notes.append)
    assert len(rw.prompts) == 8  # only the bios never generated; the torn row's one is in the cache
    assert any("partial last line" in n for n in notes)
    keys = [(json.loads(x)["person_id"], json.loads(x)["copy"]) for x in work.read_text().splitlines()]
    assert sorted(keys) == [(i, c) for i in range(6) for c in range(2)]
    # new settings (prompt mode) redo the accepted bios, fresh prompts, so fresh generations
    rw = Biographer(cfg)
    generate_bior(cfg, rw, tmp_path / "r", options=BiorConfig(mode="llama2"), overwrite=True, log=notes.append)
    assert len(rw.prompts) == 12 and "settings changed" in notes[-1]
    assert "Be creative in the writing" in rw.prompts[0]


def test_bad_configs_and_cli_helper(tmp_path):
    with pytest.raises(KnowlabError, match="not a bioR variant"):
        generate_bior(data_cfg(variant="multi2+permute"), "shuffle", tmp_path / "x")
    with pytest.raises(KnowlabError, match="celebrity_variant 'multi5\\+permute' is not a bioR variant"):
        generate_bior(data_cfg(celebrities=2), "shuffle", tmp_path / "x")
    with pytest.raises(KnowlabError, match="needs a language model"):
        generate_bior(data_cfg(), "shuffle", tmp_path / "x")
    cfg = data_cfg(celebrities=2, celebrity_variant="multi2")
    m = generate_bior(cfg, Biographer(cfg), tmp_path / "celeb")
    assert m["counts"]["bios"] == 6 + 2 * 2 and m["bior"]["copies"] == {"minority": 1, "celebrity": 2}
    parser = argparse.ArgumentParser()
    parser.add_argument("--out")
    parser.add_argument("--overwrite", action="store_true")
    add_bior_arguments(parser)
    args = parser.parse_args(["--out", str(tmp_path / "y"), "--bior-mode", "llama2", "--max-attempts", "2"])
    with pytest.raises(KnowlabError, match="needs --rewriter"):
        run_bior(args, data_cfg())
    args.rewriter = "hf:/no/such/model"
    with pytest.raises(KnowlabError, match="not a local model folder"):
        run_bior(args, data_cfg())
