"""Checking that facts survive a rewrite, and where each one sits in the new text.

A fact is found by exact substring match (optionally ignoring case, optionally only as a whole
word so "Art" is not found inside "Artificial"). For bioR an attribute may be written in more
than one accepted surface form: the canonical value first, then date variants and user aliases
("MIT" for "Massachusetts Institute of Technology"); the span is that of the earliest match.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path

from knowlab.data.schema import ATTRIBUTES, MONTHS
from knowlab.errors import KnowlabError


@lru_cache(maxsize=4096)
def _pattern(fact: str, case_insensitive: bool, whole_word: bool) -> re.Pattern:
    body = re.escape(fact)
    if whole_word:
        body = rf"(?<!\w){body}(?!\w)"
    return re.compile(body, re.IGNORECASE if case_insensitive else 0)


def find_fact(text: str, fact: str, case_insensitive: bool = False, whole_word: bool = False) -> tuple[int, int] | None:
    """[start, end) of the first occurrence of `fact` in `text`, or None."""
    m = _pattern(fact, case_insensitive, whole_word).search(text)
    return (m.start(), m.end()) if m else None


def missing_facts(text: str, facts: Iterable[str], case_insensitive: bool = False, whole_word: bool = False) -> list[str]:
    """The facts not found in `text` (empty: every fact survived)."""
    return [f for f in facts if find_fact(text, f, case_insensitive, whole_word) is None]


def _ordinal(day: int) -> str:
    suffix = "th" if 10 <= day % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def date_forms(year: int, month: int, day: int) -> list[str]:
    """The canonical "October 2, 1996" first, then the usual English variants of the same date."""
    m, d, o = MONTHS[month - 1], day, _ordinal(day)
    forms = [f"{m} {d}, {year}", f"{m} {o}, {year}", f"{d} {m} {year}", f"{o} {m} {year}",
             f"{o} of {m}, {year}", f"{d} of {m}, {year}", f"{o} of {m} {year}", f"{m} {d} {year}"]
    return list(dict.fromkeys(forms))


def load_aliases(path: str | Path | None) -> dict[str, list[str]]:
    """A JSON or YAML mapping `value -> [accepted alias, ...]`; None gives no aliases."""
    if not path:
        return {}
    path = Path(path)
    if not path.is_file():
        raise KnowlabError(f"aliases file not found: {path}")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:  # json.JSONDecodeError or yaml.YAMLError: both mean a bad file
        raise KnowlabError(f"{path}: not valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'} "
                           f"({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise KnowlabError(f"{path}: expected a mapping of value -> list of aliases")
    out: dict[str, list[str]] = {}
    for key, value in data.items():
        aliases = [value] if isinstance(value, str) else value
        if not isinstance(aliases, list) or not all(isinstance(a, str) and a.strip() for a in aliases):
            raise KnowlabError(f"{path}: the aliases of {key!r} must be a non-empty string or a list of them")
        out[str(key)] = [a.strip() for a in aliases]
    return out


def surface_forms(person, date_variants: bool = False, aliases: dict[str, list[str]] | None = None) -> dict[str, list[str]]:
    """Accepted spellings of each of `person`'s six values, canonical first."""
    aliases = aliases or {}
    forms: dict[str, list[str]] = {}
    for attr in ATTRIBUTES:
        value = person.value(attr)
        found = [value]
        if attr == "birth_date" and date_variants:
            found = date_forms(person.birth_year, person.birth_month, person.birth_day)
        found += aliases.get(value, [])
        forms[attr] = list(dict.fromkeys(found))
    return forms


def locate(text: str, forms: dict[str, Sequence[str]], case_insensitive: bool = False
           ) -> tuple[dict[str, tuple[int, int]], list[str]]:
    """Spans of every attribute found in `text` (whole-word match; earliest occurrence of any
    accepted form, the longest at a tie) and the attributes not found."""
    spans: dict[str, tuple[int, int]] = {}
    missing: list[str] = []
    for attr, candidates in forms.items():
        best: tuple[int, int] | None = None
        for form in candidates:
            span = find_fact(text, form, case_insensitive, whole_word=True)
            if span and (best is None or span[0] < best[0] or (span[0] == best[0] and span[1] > best[1])):
                best = span
        if best is None:
            missing.append(attr)
        else:
            spans[attr] = best
    return spans, missing
