"""What makes a rewrite run cheap to repeat and safe to interrupt.

- `RewriteCache`: an SQLite file mapping (model identity, prompt, sampling params, seed) to the
  generated text, so a rerun, or a rejection-sampling retry already tried, costs nothing.
- `CachedRewriter`: any Rewriter behind that cache.
- `JsonlAppender`: the output file. Rows are written as whole lines in one `write` each on an
  append-only descriptor and fsynced every few rows and at close. On reopening, a trailing
  partial line (a crash mid-write) is cut off and the ids of the complete rows are returned, so
  a resumed run skips them: no duplicates, no losses.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from knowlab.augment.rewriter import Rewriter
from knowlab.errors import KnowlabError


def cache_key(identity: str, prompt: str, params: dict[str, Any], seed: int) -> str:
    blob = json.dumps([identity, prompt, params, int(seed)], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


class RewriteCache:
    """key -> generated text in an SQLite file (WAL mode, so a reader never blocks the writer)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(str(self.path), timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS rewrites (key TEXT PRIMARY KEY, output TEXT NOT NULL)")
            self._db.commit()
        except sqlite3.DatabaseError as exc:
            raise KnowlabError(f"{self.path}: not a usable rewrite cache ({exc}); delete it to start afresh") from None

    def get_many(self, keys: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        unique = list(dict.fromkeys(keys))
        for i in range(0, len(unique), 500):  # SQLite caps the number of bound parameters
            chunk = unique[i:i + 500]
            marks = ",".join("?" * len(chunk))
            found.update(self._db.execute(f"SELECT key, output FROM rewrites WHERE key IN ({marks})", chunk))
        return found

    def put_many(self, items: dict[str, str]) -> None:
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO rewrites (key, output) VALUES (?, ?)", items.items())

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM rewrites").fetchone()[0]

    def close(self) -> None:
        self._db.close()


class CachedRewriter(Rewriter):
    """`inner` behind a `RewriteCache`; `hits` and `misses` count prompts served from each."""

    def __init__(self, inner: Rewriter, cache: RewriteCache):
        self.inner = inner
        self.cache = cache
        self.params = inner.params
        self.name = inner.name
        self.needs_prompt = inner.needs_prompt
        self.hits = 0
        self.misses = 0

    @property
    def identity(self) -> str:
        return self.inner.identity

    def _generate(self, prompts: list[str], seeds: list[int]) -> list[str]:
        params = self.params.key()
        keys = [cache_key(self.identity, p, params, s) for p, s in zip(prompts, seeds)]
        found = self.cache.get_many(keys)
        todo = [i for i, k in enumerate(keys) if k not in found]
        self.hits += len(prompts) - len(todo)
        self.misses += len(todo)
        if todo:
            fresh = self.inner._generate([prompts[i] for i in todo], [seeds[i] for i in todo])
            new = {keys[i]: text for i, text in zip(todo, fresh)}
            self.cache.put_many(new)  # stored before use: a crash right after loses nothing paid for
            found.update(new)
        return [found[k] for k in keys]

    def close(self) -> None:
        self.inner.close()
        self.cache.close()


def recover_jsonl(path: str | Path, key: Callable[[dict], Any]) -> tuple[set, int, bool]:
    """Make `path` end at its last complete line; returns (keys of its rows, row count, whether a
    partial line was cut off). A complete line that is not JSON is an error: it is not ours."""
    path = Path(path)
    if not path.exists():
        return set(), 0, False
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    cut = end < len(data)
    if cut:
        os.truncate(path, end)
    keys, rows = set(), 0
    for lineno, line in enumerate(data[:end].splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            keys.add(key(row))
        except (ValueError, KeyError, TypeError):
            raise KnowlabError(f"{path}:{lineno}: not a row written by knowlab; fix or remove that line to resume") from None
        rows += 1
    return keys, rows, cut


class JsonlAppender:
    """Appends JSON rows as complete lines; fsyncs every `fsync_every` rows or seconds and on close."""

    def __init__(self, path: str | Path, fsync_every: int = 64, fsync_seconds: float = 2.0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._every, self._seconds = fsync_every, fsync_seconds
        self._pending, self._last = 0, time.monotonic()
        self.written = 0

    def write(self, row: dict) -> None:
        data = (json.dumps(row, ensure_ascii=False) + "\n").encode()
        view = memoryview(data)
        while view:  # os.write may write less than asked; a crash in between leaves a partial line
            n = os.write(self._fd, view)
            view = view[n:]
        self.written += 1
        self._pending += 1
        if self._pending >= self._every or time.monotonic() - self._last >= self._seconds:
            self.sync()

    def sync(self) -> None:
        if self._pending:
            os.fsync(self._fd)
            self._pending, self._last = 0, time.monotonic()

    def close(self) -> None:
        if self._fd >= 0:
            self.sync()
            os.close(self._fd)
            self._fd = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
