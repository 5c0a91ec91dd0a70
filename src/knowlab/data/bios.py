"""Rendering bio entries with exact character spans for every attribute value.

An entry is six sentences, one per attribute, joined by single spaces. The spec (see `spec.py`)
decides how many entries a person gets, whether templates are redrawn per entry, the sentence
order, whether pronouns become the full name, and the language. The character span of each
value is known at rendering time, so it is recorded rather than searched for afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from knowlab.data.people import Person
from knowlab.data.schema import ATTRIBUTES
from knowlab.data.spec import AugSpec
from knowlab.data.templates import load_templates, name_fields, pronoun_fields

# Ordered pairs kept together by `coupleM` (App. A.1.1).
COUPLES = ((0, 1), (2, 3), (4, 5))


@dataclass(frozen=True)
class Entry:
    person_id: int
    index: int  # 0..entries-1 within the person
    text: str
    spans: dict[str, tuple[int, int]]  # attribute -> [start, end) in characters
    order: tuple[int, ...]  # attribute indices in sentence order
    templates: tuple[int, ...]  # template index per attribute (in ATTRIBUTES order)


class Renderer:
    """Renders entries; caches pronoun-filled template halves, which repeat across people."""

    def __init__(self, language: str = "en"):
        self.language = language
        self.templates = load_templates(language)
        self.counts = np.array([len(self.templates[a]) for a in ATTRIBUTES])
        self._pronoun_cache: dict[tuple[int, int, str, str], tuple[str, str]] = {}

    def _halves(self, attr_i: int, t_i: int, person: Person, named: bool) -> tuple[str, str]:
        tpl = self.templates[ATTRIBUTES[attr_i]][t_i]
        if named:
            fields = name_fields(person.name, person.gender, self.language)
            return tpl.before.format(**fields), tpl.after.format(**fields)
        key = (attr_i, t_i, person.pronoun, person.gender)
        halves = self._pronoun_cache.get(key)
        if halves is None:
            fields = pronoun_fields(person.pronoun, person.gender, self.language)
            halves = (tpl.before.format(**fields), tpl.after.format(**fields))
            self._pronoun_cache[key] = halves
        return halves

    def render(self, person: Person, templates, order, fullname: bool, index: int = 0) -> Entry:
        parts: list[str] = []
        spans: dict[str, tuple[int, int]] = {}
        pos = 0
        for slot, attr_i in enumerate(order):
            attr_i = int(attr_i)
            before, after = self._halves(attr_i, int(templates[attr_i]), person, fullname or slot == 0)
            value = person.value(ATTRIBUTES[attr_i], self.language)
            start = pos + len(before)
            spans[ATTRIBUTES[attr_i]] = (start, start + len(value))
            sentence = before + value + after
            parts.append(sentence)
            pos += len(sentence) + 1
        return Entry(
            person_id=person.id,
            index=index,
            text=" ".join(parts),
            spans=spans,
            order=tuple(int(o) for o in order),
            templates=tuple(int(t) for t in templates),
        )


def _orders(spec: AugSpec, n: int, rng: np.random.Generator) -> np.ndarray:
    """Sentence orders for n entries: fixed, fully shuffled, or shuffled by pairs."""
    base = np.tile(np.arange(len(ATTRIBUTES)), (n, 1))
    if spec.base == "couple":
        pair_orders = rng.permuted(np.tile(np.arange(len(COUPLES)), (n, 1)), axis=1)
        return np.array([[a for p in row for a in COUPLES[p]] for row in pair_orders])
    if spec.permute:
        return rng.permuted(base, axis=1)
    return base


def generate_entries(
    people: list[Person], spec: AugSpec, rng: np.random.Generator, renderer: Renderer | None = None
) -> Iterator[Entry]:
    """All entries of `spec` for `people`, person by person (entry order within a person kept)."""
    renderer = renderer or Renderer("fr" if spec.french else "en")
    n, m = len(people), spec.entries
    draws = m if spec.resample_templates else 1
    templates = rng.integers(0, renderer.counts, size=(n, draws, len(ATTRIBUTES)))
    orders = _orders(spec, n * m, rng).reshape(n, m, len(ATTRIBUTES))
    for i, person in enumerate(people):
        for j in range(m):
            t = templates[i, j if spec.resample_templates else 0]
            yield renderer.render(person, t, orders[i, j], spec.fullname, index=j)


def fresh_entry(person: Person, spec: AugSpec, rng: np.random.Generator, renderer: Renderer) -> Entry:
    """One newly drawn entry (templates and order) for the per-exposure stream of Part 3.3."""
    templates = rng.integers(0, renderer.counts)
    order = _orders(spec, 1, rng)[0]
    return renderer.render(person, templates, order, spec.fullname)
