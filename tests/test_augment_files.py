"""`knowlab augment` on users' JSONL: fact checking, failure reports, caching, crash-safe
streaming output and resume, input validation, the CLI. Rewriters here are in-process and
deterministic; the model backends are tested in test_augment_backends.py."""

import json
import re

import pytest

from knowlab.augment.augment import AugmentConfig, _seed, augment_file, read_rows
from knowlab.augment.cache import CachedRewriter, JsonlAppender, RewriteCache, recover_jsonl
from knowlab.augment.rewriter import Rewriter, SamplingParams
from knowlab.cli import main
from knowlab.errors import KnowlabError

DOCS = [
    {"id": i, "name": f"Person{i} Q Test", "pronoun": "she",
     "text": f"Person{i} Q Test was born on October {i + 1}, 1990. She studied Physics at Yale University. "
             f"She works for Acme Inc. in Boston, MA.",
     "facts": [f"October {i + 1}, 1990", "Yale University", "Boston, MA"]}
    for i in range(6)
]


FIRST_ATTEMPT_SEEDS = {_seed(0, d["id"], c, 0) for d in DOCS for c in range(2)}


class Paraphraser(Rewriter):
    """Rewrites the document in the prompt deterministically; `drop_first` loses a fact on every
    first attempt (known by its seed); `alter` always mangles the dates; counts every prompt."""

    name = "test-paraphraser"

    def __init__(self, drop_first=False, alter=False, fail_after=None):
        super().__init__(SamplingParams())
        self.drop_first, self.alter, self.fail_after = drop_first, alter, fail_after
        self.seen: dict[str, int] = {}
        self.calls = 0

    def _generate(self, prompts, seeds):
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise KeyboardInterrupt  # what Ctrl-C (or a crash) looks like from here
        out = []
        for prompt, seed in zip(prompts, seeds):
            self.seen[prompt] = self.seen.get(prompt, 0) + 1
            text = re.search(r"Text: (.*)\n\nRewritten text:", prompt, re.S).group(1)
            sentences = text.split(". ")
            new = f"[{seed % 97}] " + ". ".join(reversed(sentences))
            if self.alter:
                new = new.replace("October", "Oct.")
            if self.drop_first and seed in FIRST_ATTEMPT_SEEDS:
                new = new.replace("Boston, MA", "Massachusetts")
            out.append(new)
        return out


def write_input(path, docs=DOCS):
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    return path


def rows_of(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_rewrites_keep_every_fact_and_dropped_facts_are_retried(tmp_path):
    src = write_input(tmp_path / "in.jsonl")
    rw = Paraphraser(drop_first=True)
    summary = augment_file(src, tmp_path / "out.jsonl", rw, AugmentConfig(copies=2, max_attempts=3))
    rows = rows_of(tmp_path / "out.jsonl")
    assert summary.written == len(rows) == 12 and summary.failed == 0
    assert sorted((r["id"], r["copy"]) for r in rows) == [(i, c) for i in range(6) for c in range(2)]
    for r in rows:
        assert all(f in r["text"] for f in r["facts"]) and r["attempts"] == 2  # the first try dropped a fact
        assert r["name"] == f"Person{r['id']} Q Test"  # other fields pass through
    assert not (tmp_path / "out.failed.jsonl").exists()
    # copies differ (their seeds do)
    by_id = {}
    for r in rows:
        by_id.setdefault(r["id"], set()).add(r["text"])
    assert all(len(texts) == 2 for texts in by_id.values())


def test_altered_facts_are_reported_never_kept(tmp_path, capsys):
    src = write_input(tmp_path / "in.jsonl", DOCS[:2])
    summary = augment_file(src, tmp_path / "out.jsonl", Paraphraser(alter=True), AugmentConfig(max_attempts=2))
    assert summary.written == 0 and summary.failed == 2
    assert (tmp_path / "out.jsonl").read_text() == ""
    failed = rows_of(tmp_path / "out.failed.jsonl")
    assert [(f["id"], f["attempts"]) for f in failed] == [(0, 2), (1, 2)]
    assert failed[0]["missing"] == ["October 1, 1990"] and "Oct. 1, 1990" in failed[0]["last_output"]
    assert "2 failed (see" in summary.line()
    # the same run with case-insensitive facts still fails: "Oct." is not "October"
    summary = augment_file(src, tmp_path / "out2.jsonl", Paraphraser(alter=True),
                           AugmentConfig(max_attempts=1, case_insensitive=True))
    assert summary.failed == 2


def test_rerun_costs_nothing_thanks_to_the_cache(tmp_path):
    src = write_input(tmp_path / "in.jsonl")
    cache = tmp_path / "gen.sqlite"
    first = Paraphraser()
    augment_file(src, tmp_path / "a.jsonl", first, AugmentConfig(copies=2), cache=cache)
    assert first.calls > 0
    again = Paraphraser()
    summary = augment_file(src, tmp_path / "b.jsonl", again, AugmentConfig(copies=2), cache=cache)
    assert again.calls == 0 and summary.cache_hits == 12 and summary.generated == 0
    assert (tmp_path / "a.jsonl").read_text() == (tmp_path / "b.jsonl").read_text()
    # different sampling params are different cache entries
    other = Paraphraser()
    other.params = SamplingParams(temperature=0.3)
    augment_file(src, tmp_path / "c.jsonl", other, AugmentConfig(copies=2), cache=cache)
    assert other.calls > 0


def test_resume_after_a_torn_last_line_has_no_duplicates_and_no_losses(tmp_path):
    src = write_input(tmp_path / "in.jsonl")
    full = tmp_path / "full.jsonl"
    augment_file(src, full, Paraphraser(), AugmentConfig(copies=2), cache=tmp_path / "c1.sqlite")
    lines = full.read_text().splitlines(keepends=True)
    part = tmp_path / "part.jsonl"
    part.write_text("".join(lines[:5]) + lines[5][: len(lines[5]) // 2])  # killed mid-write
    rw = Paraphraser()
    summary = augment_file(src, part, rw, AugmentConfig(copies=2), cache=tmp_path / "c2.sqlite")
    assert summary.already_done == 5 and summary.written == 7 and summary.dropped_partial_line
    assert sum(rw.seen.values()) == 7  # only the missing copies were generated
    rows = rows_of(part)
    keys = [(r["id"], r["copy"]) for r in rows]
    assert len(keys) == len(set(keys)) == 12
    assert sorted(map(json.dumps, rows)) == sorted(map(json.dumps, rows_of(full)))


def test_interrupted_run_keeps_complete_rows_and_resumes(tmp_path):
    src = write_input(tmp_path / "in.jsonl")
    out = tmp_path / "out.jsonl"
    cfg = AugmentConfig(copies=2, chunk=4)
    with pytest.raises(KeyboardInterrupt):
        augment_file(src, out, Paraphraser(fail_after=1), cfg)
    assert len(rows_of(out)) == 4  # the first chunk, whole lines only
    rw = Paraphraser()
    summary = augment_file(src, out, rw, cfg)
    assert summary.already_done == 4 and summary.written == 8 and rw.calls == 2
    assert sorted((r["id"], r["copy"]) for r in rows_of(out)) == [(i, c) for i in range(6) for c in range(2)]


def test_jsonl_appender_and_recovery(tmp_path):
    path = tmp_path / "x.jsonl"
    with JsonlAppender(path, fsync_every=2) as w:
        for i in range(3):
            w.write({"id": i, "copy": 0, "text": "é"})
    with open(path, "ab") as fh:
        fh.write(b'{"id": 3, "co')
    keys, n, cut = recover_jsonl(path, lambda r: (r["id"], r["copy"]))
    assert keys == {(0, 0), (1, 0), (2, 0)} and n == 3 and cut
    assert path.read_text().endswith("}\n") and recover_jsonl(path, lambda r: r["id"])[2] is False
    with open(path, "a") as fh:
        fh.write("garbage\n")
    with pytest.raises(KnowlabError, match=r"x.jsonl:4: not a row written by knowlab"):
        recover_jsonl(path, lambda r: r["id"])


def test_cache_roundtrip(tmp_path):
    cache = RewriteCache(tmp_path / "c.sqlite")
    rw = CachedRewriter(Paraphraser(), cache)
    prompts = [f"Text: A{i}. B{i}\n\nRewritten text:" for i in range(3)]
    first = rw.rewrite(prompts, [1, 2, 3])
    assert rw.rewrite(prompts, [1, 2, 3]) == first and rw.hits == 3 and rw.misses == 3
    assert rw.rewrite(prompts[:1], [9]) != first[:1] and len(cache) == 4


@pytest.mark.parametrize("line, message", [
    ('{"id": 1, "text": "x", "facts": []', "not valid JSON"),
    ('["a list"]', "expected a JSON object"),
    ('{"text": "x", "facts": []}', "missing 'id'"),
    ('{"id": 9, "facts": ["x"]}', "missing 'text'"),
    ('{"id": 9, "text": "x"}', "missing 'facts'"),
    ('{"id": 9, "text": "x", "facts": "x"}', "missing 'facts'"),
    ('{"id": 9, "text": "x", "facts": [], "pronoun": "it"}', "'pronoun' must be"),
    ('{"id": 0, "text": "x", "facts": []}', "id 0 already used on line 1"),
])
def test_bad_input_rows_name_their_line(tmp_path, line, message):
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps(DOCS[0]) + "\n\n" + line + "\n")
    with pytest.raises(KnowlabError, match=f"in.jsonl:3: .*{re.escape(message)}"):
        read_rows(path)


def test_cli_shuffle_without_a_model(tmp_path, capsys):
    src = write_input(tmp_path / "in.jsonl")
    out = tmp_path / "out.jsonl"
    assert main(["augment", str(src), "--style", "shuffle", "--copies", "3", "--out", str(out)]) == 0
    assert "18 written" in capsys.readouterr().out
    rows = rows_of(out)
    assert len(rows) == 18
    for r in rows:
        assert r["text"].startswith(r["name"]) or f"{r['name']} " in r["text"].split(". ")[0]
        assert r["text"].count(r["name"]) == 1 and all(f in r["text"] for f in r["facts"])
    # rerun: nothing left to do
    assert main(["augment", str(src), "--style", "shuffle", "--copies", "3", "--out", str(out)]) == 0
    assert "0 written (18 already in" in capsys.readouterr().out
    # a model style needs a model; the shuffle backend cannot paraphrase; bad input is one line, exit 2
    assert main(["augment", str(src), "--style", "paraphrase", "--out", str(out)]) == 2
    assert main(["augment", str(src), "--style", "translate", "--rewriter", "shuffle", "--out", str(out)]) == 2
    (tmp_path / "bad.jsonl").write_text("{oops\n")
    assert main(["augment", str(tmp_path / "bad.jsonl"), "--style", "shuffle", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "needs a model" in err and "only does --style shuffle" in err and "bad.jsonl:1: not valid JSON" in err
    assert "Traceback" not in err


def test_cli_reports_failures_with_exit_1(tmp_path, capsys):
    # a fact that is not in the document cannot be in any rewrite of it
    doc = {"id": "a", "text": "One thing. Two things. Three things.", "facts": ["Two things.", "Four things."]}
    src = write_input(tmp_path / "in.jsonl", [doc, {**doc, "id": "b", "facts": ["Two things."]}])
    out = tmp_path / "out.jsonl"
    assert main(["augment", str(src), "--style", "shuffle", "--out", str(out), "--max-attempts", "3"]) == 1
    assert "1 written" in capsys.readouterr().out and [r["id"] for r in rows_of(out)] == ["b"]
    failed = rows_of(tmp_path / "out.failed.jsonl")
    assert failed == [{"id": "a", "copy": 0, "attempts": 3, "missing": ["Four things."], "last_output": failed[0]["last_output"]}]
