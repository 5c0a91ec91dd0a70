"""`knowlab augment`: knowledge augmentation of users' own documents, with facts that must survive.

Input: JSONL, one document per line: `{"id": ..., "text": "...", "facts": ["...", ...]}` plus
optional `name` and `pronoun` (he, she, they) used by model-free shuffling. Output: JSONL, one
row per accepted copy: the input row with `text` replaced and `copy` (0..M-1) added. A copy is
accepted only if every fact is found in it verbatim; otherwise it is retried with a new seed up
to `max_attempts` times, then written to `OUT.failed.jsonl` and counted in the summary, never
kept. Rows are streamed to the output as they are accepted; an interrupted run is resumed by
running the same command again (done copies are skipped, a torn last line is dropped).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from knowlab.augment.cache import CachedRewriter, JsonlAppender, RewriteCache, recover_jsonl
from knowlab.augment.facts import missing_facts
from knowlab.augment.rewriter import Rewriter, SamplingParams, load_rewriter
from knowlab.errors import KnowlabError
from knowlab.io import write_text_atomic
from knowlab.progress import progress

STYLES = ("shuffle", "paraphrase", "translate")

PROMPTS = {
    "paraphrase": ("Rewrite the following text in your own words, keeping its meaning. Copy each of these "
                   "exact phrases unchanged: {facts}.\n\nText: {text}\n\nRewritten text:"),
    "shuffle": ("Rewrite the following text with its sentences in a different order, so that it still reads "
                "naturally. Copy each of these exact phrases unchanged: {facts}.\n\nText: {text}\n\nRewritten text:"),
    "translate": ("Translate the following text into {language}. Copy each of these exact phrases unchanged: "
                  "{facts}.\n\nText: {text}\n\n{language} translation:"),
}


@dataclass
class AugmentConfig:
    style: Literal["shuffle", "paraphrase", "translate"] = "paraphrase"
    copies: int = 1  # M rewrites per document
    max_attempts: int = 4  # tries per copy before it is reported as failed
    case_insensitive: bool = False  # facts match ignoring case
    whole_words: bool = False  # a fact must not sit inside a longer word ("Art" in "Artificial")
    language: str = "French"  # target of style=translate
    seed: int = 0
    chunk: int = 32  # copies sent to the rewriter per call (the HTTP backend parallelises within it)
    sampling: SamplingParams = field(default_factory=SamplingParams)

    def validate(self) -> None:
        if self.style not in STYLES:
            raise KnowlabError(f"style '{self.style}' is not valid; valid: {', '.join(STYLES)}")
        for key in ("copies", "max_attempts", "chunk"):
            if getattr(self, key) < 1:
                raise KnowlabError(f"{key} must be at least 1, got {getattr(self, key)}")
        self.sampling.validate()


@dataclass
class Summary:
    out: Path
    failed_path: Path
    documents: int
    copies: int
    already_done: int  # copies found complete in the output from an earlier run
    written: int
    failed: int
    dropped_partial_line: bool
    cache_hits: int = 0
    generated: int = 0

    def line(self) -> str:
        text = (f"augment: {self.documents:,} documents x {self.copies} copies: {self.written:,} written"
                f" ({self.already_done:,} already in {self.out}), {self.failed:,} failed")
        if self.failed:
            text += f" (see {self.failed_path})"
        if self.cache_hits or self.generated:
            text += f"; {self.cache_hits:,} from cache, {self.generated:,} generated"
        if self.dropped_partial_line:
            text += "; dropped a partial last line left by an interrupted run"
        return text


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """The input rows, checked; any bad row is a KnowlabError naming its line."""
    path = Path(path)
    if not path.is_file():
        raise KnowlabError(f"input file not found: {path}")
    rows: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise KnowlabError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
            if not isinstance(row, dict):
                raise KnowlabError(f"{where}: expected a JSON object with id, text and facts")
            if not isinstance(row.get("id"), (str, int)) or isinstance(row.get("id"), bool):
                raise KnowlabError(f"{where}: missing 'id' (a string or an integer)")
            if not isinstance(row.get("text"), str) or not row["text"].strip():
                raise KnowlabError(f"{where}: missing 'text' (a non-empty string)")
            facts = row.get("facts")
            if not isinstance(facts, list) or not all(isinstance(f, str) and f for f in facts):
                raise KnowlabError(f"{where}: missing 'facts' (a list of non-empty strings)")
            if "name" in row and not isinstance(row["name"], str):
                raise KnowlabError(f"{where}: 'name' must be a string")
            if row.get("pronoun") is not None and row["pronoun"] not in ("he", "she", "they"):
                raise KnowlabError(f"{where}: 'pronoun' must be he, she or they, got {row['pronoun']!r}")
            key = _row_key(row["id"])
            if key in seen:
                raise KnowlabError(f"{where}: id {row['id']!r} already used on line {seen[key]}")
            seen[key] = lineno
            rows.append(row)
    if not rows:
        raise KnowlabError(f"{path}: no rows")
    return rows


def _row_key(row_id: Any) -> str:
    return json.dumps(row_id)


def _seed(seed: int, row_id: Any, copy: int, attempt: int) -> int:
    digest = hashlib.sha256(f"{seed}|{_row_key(row_id)}|{copy}|{attempt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def build_prompt(style: str, row: dict[str, Any], language: str = "French") -> str:
    facts = "; ".join(f'"{f}"' for f in row["facts"]) or "(none)"
    return PROMPTS[style].format(text=row["text"].strip(), facts=facts, language=language)


def failed_path_for(out: str | Path) -> Path:
    out = Path(out)
    stem = out.name[: -len(".jsonl")] if out.name.endswith(".jsonl") else out.name
    return out.with_name(f"{stem}.failed.jsonl")


def augment_file(input_path: str | Path, out: str | Path, rewriter: Rewriter | str, cfg: AugmentConfig | None = None,
                 cache: str | Path | None = None, show_progress: bool = False) -> Summary:
    """Augment every document of `input_path` into `out` (appending; resumable).

    `rewriter`: a SPEC string (its backend samples with `cfg.sampling`, and is closed at the end)
    or a Rewriter (its own params; left open). `cache`: an SQLite file for generations (default
    `OUT.cache.sqlite`; not used by `shuffle`)."""
    cfg = cfg or AugmentConfig()
    cfg.validate()
    rows = read_rows(input_path)
    out = Path(out)
    failed_path = failed_path_for(out)
    base = load_rewriter(rewriter, cfg.sampling)
    if not base.needs_prompt and cfg.style != "shuffle":
        raise KnowlabError(f"the shuffle rewriter only does --style shuffle, not {cfg.style}; give a model with --rewriter")
    model: Rewriter = base
    if base.needs_prompt:
        model = CachedRewriter(base, RewriteCache(cache or out.with_name(out.name + ".cache.sqlite")))
    try:
        done, _, cut = recover_jsonl(out, lambda r: (_row_key(r["id"]), int(r["copy"])))
        jobs = [(row, c) for row in rows for c in range(cfg.copies) if (_row_key(row["id"]), c) not in done]
        summary = Summary(out, failed_path, len(rows), cfg.copies, len(rows) * cfg.copies - len(jobs), 0, 0, cut)
        failures: list[dict[str, Any]] = []
        bar = progress(total=len(jobs), desc=f"augment {cfg.style}", disable=None if show_progress else True)
        with JsonlAppender(out) as writer:
            for start in range(0, len(jobs), cfg.chunk):
                failures += _run_chunk(jobs[start:start + cfg.chunk], model, cfg, writer, bar)
        bar.close()
        summary.written = writer.written
        summary.failed = len(failures)
        if isinstance(model, CachedRewriter):
            summary.cache_hits, summary.generated = model.hits, model.misses
    finally:
        if isinstance(model, CachedRewriter):
            model.cache.close()
        if not isinstance(rewriter, Rewriter):  # close only what was opened here from a SPEC
            base.close()
    if failures:
        write_text_atomic(failed_path, "".join(json.dumps(f, ensure_ascii=False) + "\n" for f in failures))
    elif failed_path.exists():
        failed_path.unlink()  # earlier failures have all been redone now
    return summary


def _run_chunk(jobs: list[tuple[dict, int]], model: Rewriter, cfg: AugmentConfig, writer: JsonlAppender, bar) -> list[dict]:
    """Rejection sampling for one chunk of (row, copy) jobs; returns the copies that never passed."""
    pending = [(row, copy, "", []) for row, copy in jobs]
    for attempt in range(cfg.max_attempts):
        if not pending:
            break
        seeds = [_seed(cfg.seed, row["id"], copy, attempt) for row, copy, _, _ in pending]
        if model.needs_prompt:
            outputs = model.rewrite([build_prompt(cfg.style, row, cfg.language) for row, *_ in pending], seeds)
        else:
            outputs = [model.shuffle_row(row["text"], s, row.get("name"), row.get("pronoun"))  # type: ignore[attr-defined]
                       for (row, *_), s in zip(pending, seeds)]
        still = []
        for (row, copy, _, _), text in zip(pending, outputs):
            text = text.strip()
            missing = missing_facts(text, row["facts"], cfg.case_insensitive, cfg.whole_words)
            if text and not missing:
                writer.write({**row, "text": text, "copy": copy, "attempts": attempt + 1})
                bar.update(1)
            else:
                still.append((row, copy, text, missing if text else ["(empty output)"]))
        pending = still
    bar.update(len(pending))
    return [{"id": row["id"], "copy": copy, "attempts": cfg.max_attempts, "missing": missing, "last_output": text}
            for row, copy, text, missing in pending]
