"""bioR ([P] Section 2, App. A.2): biographies written by a language model, then checked.

For every person and copy, a prompt asks for a short biography and states the six facts in
"The person ..." sentences drawn from small pools (university and major joined, the four
groups shuffled). The reply is accepted only if all six values appear verbatim (as whole words;
accepted surface forms: the canonical value, optional date variants, user aliases); otherwise a
new sample is drawn, up to `max_attempts` times, after which the person is reported as failed.
`fullname` turns the person's pronouns into the full name before the check.

The result is a dataset folder with the bioS layout (people/bios/qa parquet, tokenizer, card,
manifest), the same people and splits as bioS with the same config and seed, and character and
token spans at the first occurrence of every value, so QA, evaluation and probing run unchanged.

Work in progress lives in `<out>.work/`: `rewrites.jsonl` (accepted bios, streamed, resumable),
`failed.jsonl`, `cache.sqlite` (every generation), `settings.json`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from knowlab.augment.cache import CachedRewriter, JsonlAppender, RewriteCache, recover_jsonl
from knowlab.augment.facts import load_aliases, locate, surface_forms
from knowlab.augment.rewriter import Rewriter, SamplingParams, load_rewriter
from knowlab.augment.shuffle import pronouns_to_name
from knowlab.config import to_dict
from knowlab.data.bios import Entry
from knowlab.data.config import DataConfig
from knowlab.data.people import Person
from knowlab.data.schema import ATTRIBUTES
from knowlab.data.spec import parse_spec
from knowlab.errors import KnowlabError
from knowlab.io import code_version, write_json_atomic, write_text_atomic
from knowlab.progress import progress

# Our own wording of the App. A.2 sentence pools: 2 birthday, 6 birth city, 7 university,
# 4 major (continuing the university sentence), 14 company-with-city.
BIRTHDAY = ("The person was born on {birth_date}.", "The person's birthday is {birth_date}.")
BIRTH_CITY = (
    "The person was born in {birth_city}.", "The person grew up in {birth_city}.",
    "The person's hometown is {birth_city}.", "The person spent their childhood in {birth_city}.",
    "The person comes from {birth_city}.", "The person's place of birth is {birth_city}.",
)
UNIVERSITY = (
    "The person studied at {university}", "The person graduated from {university}",
    "The person attended {university}", "The person received a degree from {university}",
    "The person went to college at {university}", "The person completed their education at {university}",
    "The person was a student at {university}",
)
MAJOR = (" and majored in {major}.", ", with a major in {major}.", ", where they majored in {major}.",
         ", focusing on {major}.")
COMPANY = (
    "The person works at {company} in {company_city}.", "The person is employed by {company} in {company_city}.",
    "The person has a job at {company}, located in {company_city}.",
    "The person worked for {company}, based in {company_city}.",
    "The person holds a position at {company} in {company_city}.",
    "The person built a career at {company} in {company_city}.",
    "The person is on the staff of {company}, headquartered in {company_city}.",
    "The person joined {company} in {company_city}.",
    "The person earns a living at {company}, which is in {company_city}.",
    "The person took a job with {company} in {company_city}.",
    "The person is an employee of {company}, in {company_city}.",
    "The person contributes to {company} at its offices in {company_city}.",
    "The person found work at {company} in {company_city}.",
    "The person serves at {company}, whose headquarters are in {company_city}.",
)
MODES = {
    "llama1": "Write a {words} words biography about a person whose name is {name}.",
    "llama2": ("Write a {words}-word biography about a person whose name is {name}. "
               "Be creative in the writing and permute sentences as much as you can."),
}


@dataclass
class BiorConfig:
    mode: Literal["llama1", "llama2"] = "llama1"  # the paper's Llama1 prompt, or the Llama2 one
    words: int = 50
    words_max: int = 0  # > words: each prompt asks for a word count drawn from [words, words_max]
    max_attempts: int = 8  # samples per bio before the person is reported as failed
    date_variants: bool = False  # also accept "2 October 1996", "October 2nd, 1996", ...
    aliases: str | None = None  # JSON/YAML file: value -> accepted aliases ("MIT")
    on_failure: Literal["error", "drop"] = "error"  # drop: leave failed people out of the dataset
    chunk: int = 64  # bios sent to the rewriter per call
    work_dir: str | None = None  # default: <out>.work
    temperature: float = 0.8
    top_p: float = 0.95
    max_new_tokens: int = 320

    def validate(self) -> None:
        if self.words < 1 or (self.words_max and self.words_max < self.words):
            raise KnowlabError(f"words must be >= 1 and words_max 0 or >= words, got {self.words}, {self.words_max}")
        if self.max_attempts < 1 or self.chunk < 1:
            raise KnowlabError("max_attempts and chunk must be at least 1")
        self.sampling().validate()

    def sampling(self) -> SamplingParams:
        return SamplingParams(temperature=self.temperature, top_p=self.top_p, max_new_tokens=self.max_new_tokens)


def bior_prompt(person: Person, copy: int, seed: int, opts: BiorConfig | None = None) -> str:
    """The prompt of `person`'s copy `copy`: fixed by (seed, person id, copy), whatever N is."""
    opts = opts or BiorConfig()
    rng = np.random.default_rng([seed, person.id, copy, 0xB102])
    words = int(rng.integers(opts.words, opts.words_max + 1)) if opts.words_max else opts.words
    values = {a: person.value(a) for a in ATTRIBUTES}
    pick = lambda pool: pool[int(rng.integers(len(pool)))]  # noqa: E731
    groups = [pick(BIRTHDAY), pick(BIRTH_CITY), pick(UNIVERSITY) + pick(MAJOR), pick(COMPANY)]
    groups = [groups[i] for i in rng.permutation(len(groups))]
    return " ".join([MODES[opts.mode].format(words=words, name=person.name)] + [g.format(**values) for g in groups])


def sample_seed(seed: int, person_id: int, copy: int, attempt: int) -> int:
    return int(np.random.SeedSequence([seed, person_id, copy, attempt]).generate_state(1, np.uint64)[0] >> 1)


def clean_bio(raw: str, person: Person, fullname: bool) -> str:
    """One line of text (bioS bios are one line too); with fullname, the person's pronouns become the name."""
    text = " ".join(raw.split())
    if fullname:
        text = pronouns_to_name(text, person.name, ("he", "she", "they") if person.pronoun == "they" else ("he", "she"))
    return text


def _variant(copies: int, fullname: bool) -> str:
    return ("single" if copies == 1 else f"multi{copies}") + ("+fullname" if fullname else "")


def _shape(variant: str, what: str) -> tuple[int, bool]:
    spec = parse_spec(variant)
    if spec.permute or spec.base == "couple" or spec.french:
        raise KnowlabError(f"{what} '{variant}' is not a bioR variant; bioR takes single or multiM, each "
                           "optionally +fullname (the rewrite already varies sentence order, App. A.2)")
    return spec.entries, spec.fullname


def _population(cfg: DataConfig) -> list[Person]:
    """The people, groups and splits that bioS draws for the same config and seed."""
    from knowlab.data.dataset import generate_columns

    # People and splits come from their own random streams, so rendering "single" bios (cheap)
    # yields exactly the population of any variant.
    return generate_columns(replace(cfg, variant="single", celebrity_variant="single")).people.persons()


def generate_bior(cfg: DataConfig, rewriter: str | Rewriter, out: str | Path, copies: int | None = None,
                  fullname: bool | None = None, options: BiorConfig | None = None, overwrite: bool = False,
                  show_progress: bool = False, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Write a bioR dataset folder at `out`; returns its manifest.

    `cfg.variant` gives copies per person (single, multiM) and +fullname; `copies` and `fullname`
    override it. Celebrities (Result 6) use `cfg.celebrity_variant` the same way. `rewriter` is a
    SPEC string (see rewriter.py) or a Rewriter. Reruns reuse every generation (cache) and
    every accepted bio (work folder); a failure raises KnowlabError unless on_failure=drop.
    """
    opts = options or BiorConfig()
    opts.validate()
    cfg.validate()
    log = log or (lambda _msg: None)
    if cfg.per_exposure:
        raise KnowlabError("per_exposure draws fresh bioS templates per exposure; it does not apply to bioR")
    out = Path(out)
    if out.exists() and not overwrite:
        raise KnowlabError(f"output folder already exists: {out} (pass --overwrite to replace it)")
    m, full = _shape(cfg.variant, "variant")
    m, full = (copies if copies is not None else m), (fullname if fullname is not None else full)
    if m < 1:
        raise KnowlabError(f"copies must be at least 1, got {m}")
    cfg = replace(cfg, variant=_variant(m, full))
    people = _population(cfg)
    shapes = {g: ((m, full) if g != "celebrity" else _shape(cfg.celebrity_variant, "celebrity_variant"))
              for g in dict.fromkeys(p.group for p in people)}
    aliases = load_aliases(opts.aliases)
    forms = {p.id: surface_forms(p, opts.date_variants, aliases) for p in people}

    work = Path(opts.work_dir) if opts.work_dir else out.with_name(out.name + ".work")
    work.mkdir(parents=True, exist_ok=True)
    base = load_rewriter(rewriter, opts.sampling())
    if not base.needs_prompt:
        raise KnowlabError(f"bioR needs a language model to write the bios; '{base.name}' is not one "
                           "(use hf:DIR or openai:URL#model=NAME)")
    model = CachedRewriter(base, RewriteCache(work / "cache.sqlite"))
    try:
        rows, failures = _rewrite_all(cfg, opts, people, shapes, forms, model, work, show_progress, log, aliases)
        hits, generated = model.hits, model.misses
    finally:
        model.cache.close()
        if not isinstance(rewriter, Rewriter):  # close only what was opened here from a SPEC
            base.close()
    if failures:
        failed_ids = sorted({f["person_id"] for f in failures})
        shown = ", ".join(map(str, failed_ids[:8])) + (", ..." if len(failed_ids) > 8 else "")
        message = (f"{len(failures)} bio(s) of {len(failed_ids)} people failed the fact check after "
                   f"{opts.max_attempts} attempts (people {shown}); see {work / 'failed.jsonl'}")
        if opts.on_failure == "error":
            raise KnowlabError(message + ". Raise --max-attempts, accept more surface forms (--aliases, "
                               "--date-variants), or pass --on-failure drop; a rerun reuses every generation so far")
        log(message + "; these people are left out (on_failure=drop)")
        people = [p for p in people if p.id not in set(failed_ids)]
        if not people:
            raise KnowlabError(message + "; that is everyone, so there is no dataset to write")

    stats = {"cache_hits": hits, "generated": generated, "failed_people": sorted({f["person_id"] for f in failures}),
             "attempts_histogram": _histogram(rows)}
    info = {"rewriter": base.identity, "sampling": to_dict(model.params), "options": to_dict(opts),
            "copies": {g: s[0] for g, s in shapes.items()}, "fullname": {g: s[1] for g, s in shapes.items()}, **stats}
    return write_bior_folder(cfg, people, rows, forms, out, overwrite, info)


def _histogram(rows: list[dict]) -> dict[str, int]:
    hist: dict[str, int] = {}
    for r in rows:
        hist[str(r["attempt"] + 1)] = hist.get(str(r["attempt"] + 1), 0) + 1
    return dict(sorted(hist.items(), key=lambda kv: int(kv[0])))


def _settings(cfg: DataConfig, opts: BiorConfig, model: Rewriter, shapes, aliases) -> dict[str, Any]:
    """Everything an accepted bio depends on: when it changes, rewrites.jsonl starts afresh."""
    data = {k: v for k, v in to_dict(cfg).items()
            if k not in ("tokenizer", "vocab_size", "tokenizer_train_texts", "train_fraction", "minority_train_fraction")}
    keep = ("mode", "words", "words_max", "date_variants")
    return {"data": data, "bior": {k: getattr(opts, k) for k in keep}, "aliases": aliases,
            "rewriter": model.identity, "sampling": model.params.key(), "shapes": {g: list(s) for g, s in shapes.items()}}


def _rewrite_all(cfg, opts, people, shapes, forms, model, work: Path, show_progress, log, aliases):
    """Rejection sampling for every (person, copy); returns (accepted rows, failures)."""
    settings = _settings(cfg, opts, model, shapes, aliases)
    out_path, settings_path = work / "rewrites.jsonl", work / "settings.json"
    if out_path.exists() and (not settings_path.exists() or json.loads(settings_path.read_text()) != settings):
        log(f"{work}: settings changed since the last run; accepted bios are redone (cached generations are reused)")
        out_path.unlink()
    write_json_atomic(settings_path, settings)
    done, _, cut = recover_jsonl(out_path, lambda r: (int(r["person_id"]), int(r["copy"])))
    if cut:
        log(f"{out_path}: dropped a partial last line left by an interrupted run")
    by_id = {p.id: p for p in people}
    jobs = [(p, c) for p in people for c in range(shapes[p.group][0]) if (p.id, c) not in done]
    failures: list[dict] = []
    bar = progress(total=len(jobs), desc="bioR", disable=None if show_progress else True)
    with JsonlAppender(out_path) as writer:
        for start in range(0, len(jobs), opts.chunk):
            pending = [(p, c, bior_prompt(p, c, cfg.seed, opts), "", []) for p, c in jobs[start:start + opts.chunk]]
            for attempt in range(opts.max_attempts):
                if not pending:
                    break
                seeds = [sample_seed(cfg.seed, p.id, c, attempt) for p, c, *_ in pending]
                outputs = model.rewrite([prompt for _, _, prompt, _, _ in pending], seeds)
                still = []
                for (p, c, prompt, _, _), raw in zip(pending, outputs):
                    text = clean_bio(raw, p, shapes[p.group][1])
                    _, missing = locate(text, forms[p.id])
                    if not missing:
                        writer.write({"person_id": p.id, "copy": c, "attempt": attempt, "text": text,
                                      "prompt": prompt, "raw": raw})
                        bar.update(1)
                    else:
                        still.append((p, c, prompt, text, missing))
                pending = still
            bar.update(len(pending))
            failures += [{"person_id": p.id, "name": p.name, "copy": c, "attempts": opts.max_attempts,
                          "missing": missing, "last_output": text, "prompt": prompt}
                         for p, c, prompt, text, missing in pending]
    bar.close()
    write_text_atomic(work / "failed.jsonl", "".join(json.dumps(f, ensure_ascii=False) + "\n" for f in failures))
    rows = []
    with open(out_path, encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            if row["person_id"] in by_id:
                rows.append(row)
    rows.sort(key=lambda r: (r["person_id"], r["copy"]))
    return rows, failures


def entries_from_rows(rows: list[dict], forms: dict[int, dict[str, list[str]]]) -> list[Entry]:
    """bios.parquet entries: spans at the first occurrence of each value, order = value order in the text."""
    entries = []
    for r in rows:
        spans, missing = locate(r["text"], forms[r["person_id"]])
        if missing:  # accepted rows passed this very check; a mismatch means the work folder was edited
            raise KnowlabError(f"bio of person {r['person_id']} (copy {r['copy']}) lacks {', '.join(missing)}")
        order = tuple(sorted(range(len(ATTRIBUTES)), key=lambda i: spans[ATTRIBUTES[i]][0]))
        entries.append(Entry(person_id=r["person_id"], index=r["copy"], text=r["text"], spans=spans,
                             order=order, templates=()))
    return entries


# The card's YAML, as in bioS folders: it lets `datasets.load_dataset(folder, "qa")` work offline.
_CARD_YAML = "---\nconfigs:\n" + "".join(
    f"- config_name: {n}\n  data_files:\n  - split: train\n    path: {n}.parquet\n" + ("  default: true\n" if n == "bios" else "")
    for n in ("bios", "qa", "people")) + "---\n"


def _card(cfg: DataConfig, counts: dict[str, int], info: dict[str, Any]) -> str:
    return _CARD_YAML + f"""
# knowlab bioR dataset: `{cfg.variant}`

Biographies of {counts['people']:,} fictional people written by `{info['rewriter']}` from the paper's
App. A.2 style prompts ({info['options']['mode']} mode), each checked to contain all six values
verbatim (up to {info['options']['max_attempts']} samples per bio), generated by knowlab
({code_version()}). Seed {cfg.seed}; same people and P_train/P_test split as bioS with this seed.

| file | rows | what |
|---|---|---|
| bios.parquet | {counts['bios']:,} | bio entries, with character and token spans of the first occurrence of each value |
| qa.parquet | {counts['qa']:,} | six questions per person: `{{question}} Answer: {{value}}.`; `split` says P_train or P_test |
| people.parquet | {counts['people']:,} | the profiles |
| tokenizer/ | | byte-level BPE trained on these bios ({counts['vocab_size']} tokens) |

Failed people left out: {len(info['failed_people'])}. Samples needed per accepted bio: {info['attempts_histogram']}.

Load offline: `datasets.load_dataset("<this folder>", "qa")`, or
`datasets.load_dataset("parquet", data_files="<this folder>/qa.parquet")`.
"""


_PEOPLE_COLUMNS = ("id", "name", "first", "middle", "last", "gender", "pronoun", "birth_date", "birth_year",
                   "birth_month", "birth_day", "birth_city", "university", "major", "company", "company_city",
                   "split", "group")


def _tables(people: list[Person], entries: list[Entry], qa: list, tok):
    """people, bios and qa tables with the column names and types of bioS folders."""
    import pyarrow as pa

    from knowlab.data.tokenizer import encode_spans

    rows = {c: [p.name if c == "name" else p.birth_date if c == "birth_date" else getattr(p, c) for p in people]
            for c in _PEOPLE_COLUMNS}
    people_t = pa.table({c: pa.array(v, pa.int64() if isinstance(v[0] if v else "", int) else pa.string())
                         for c, v in rows.items()})
    by_id = {p.id: p for p in people}
    texts = [e.text for e in entries]
    spans = [[e.spans[a] for a in ATTRIBUTES] for e in entries]
    ids, tok_spans = encode_spans(tok, texts, spans)
    span_arr = np.asarray(spans, dtype=np.int32).reshape(len(entries), len(ATTRIBUTES), 2)
    tok_arr = np.asarray(tok_spans, dtype=np.int32).reshape(len(entries), len(ATTRIBUTES), 2)
    bios: dict[str, Any] = {
        "person_id": pa.array([e.person_id for e in entries], pa.int32()),
        "entry": pa.array([e.index for e in entries], pa.int16()),
        "group": pa.array([by_id[e.person_id].group for e in entries], pa.string()),
        "split": pa.array([by_id[e.person_id].split for e in entries], pa.string()),
        "text": pa.array(texts, pa.string()),
        "order": pa.array([list(e.order) for e in entries], pa.list_(pa.int8())),
        "input_ids": pa.array(ids, pa.list_(pa.int32())),
    }
    for i, attr in enumerate(ATTRIBUTES):
        bios[f"{attr}_start"], bios[f"{attr}_end"] = pa.array(span_arr[:, i, 0]), pa.array(span_arr[:, i, 1])
        bios[f"{attr}_tok_start"], bios[f"{attr}_tok_end"] = pa.array(tok_arr[:, i, 0]), pa.array(tok_arr[:, i, 1])
    q_texts = [q.text for q in qa]
    # The answer span starts at the space after "Answer:", so the prompt's tokens are a prefix.
    q_ids, q_spans = encode_spans(tok, q_texts, [[(q.answer_start - 1, len(q.text) - 1)] for q in qa])
    qa_t = pa.table({
        "person_id": pa.array([q.person_id for q in qa], pa.int32()),
        "attribute": pa.array([q.attribute for q in qa], pa.string()),
        "group": pa.array([by_id[q.person_id].group for q in qa], pa.string()),
        "split": pa.array([by_id[q.person_id].split for q in qa], pa.string()),
        "question": pa.array([q.question for q in qa], pa.string()),
        "answer": pa.array([q.answer for q in qa], pa.string()),
        "prompt": pa.array([q.prompt for q in qa], pa.string()),
        "text": pa.array(q_texts, pa.string()),
        "input_ids": pa.array(q_ids, pa.list_(pa.int32())),
        "answer_tok_start": pa.array([s[0][0] for s in q_spans], pa.int32()),
    })
    return people_t, pa.table(bios), qa_t


def write_bior_folder(cfg: DataConfig, people: list[Person], rows: list[dict], forms, out: str | Path,
                      overwrite: bool, info: dict[str, Any]) -> dict[str, Any]:
    """The dataset folder, laid out exactly like `knowlab.data.dataset.write_dataset`'s."""
    import pyarrow.parquet as pq

    from knowlab.data.dataset import FORMAT_VERSION
    from knowlab.data.qa import qa_items
    from knowlab.data.tokenizer import load_tokenizer, train_tokenizer
    from knowlab.io import atomic_dir, sha256_file

    keep = {p.id for p in people}
    entries = entries_from_rows([r for r in rows if r["person_id"] in keep], forms)
    qa = [item for p in people for item in qa_items(p)]
    with atomic_dir(out, overwrite=overwrite) as tmp:
        if cfg.tokenizer:
            tok = load_tokenizer(cfg.tokenizer)
        else:  # the corpus bioS uses: sampled bios, the first 2,000 people's QAs, every name
            rng = np.random.default_rng([cfg.seed, 0x70CE])
            pick = np.sort(rng.choice(len(entries), size=min(cfg.tokenizer_train_texts, len(entries)), replace=False))
            corpus = [entries[i].text for i in pick] + [q.text for q in qa[: 6 * 2000]] + [p.name for p in people]
            tok = train_tokenizer(corpus, cfg.vocab_size)
        tok.save_pretrained(str(tmp / "tokenizer"))
        people_t, bios_t, qa_t = _tables(people, entries, qa, tok)
        pq.write_table(people_t, tmp / "people.parquet")
        pq.write_table(bios_t, tmp / "bios.parquet")
        pq.write_table(qa_t, tmp / "qa.parquet")
        counts = {"people": len(people), "bios": len(entries), "qa": len(qa), "vocab_size": len(tok)}
        counts["p_train"] = sum(p.split == "train" for p in people)
        counts["p_test"] = counts["people"] - counts["p_train"]
        write_text_atomic(tmp / "README.md", _card(cfg, counts, info))
        files = sorted(p for p in tmp.rglob("*") if p.is_file())
        manifest = {
            "format_version": FORMAT_VERSION,
            "kind": "knowlab-dataset",
            "family": "bioR",
            "config": to_dict(cfg),
            "seed": cfg.seed,
            "counts": counts,
            "code_version": code_version(),
            "bior": info,
            "files": {str(p.relative_to(tmp)): sha256_file(p) for p in files},
        }
        write_json_atomic(tmp / "manifest.json", manifest)
    return manifest
