"""Rendering bio entries with exact character spans for every attribute value.

An entry is six sentences, one per attribute, joined by single spaces. The spec (see `spec.py`)
decides how many entries a person gets, whether templates are redrawn per entry, the sentence
order, whether pronouns become the full name, and the language. The character span of each
value is known at rendering time, so it is recorded rather than searched for afterwards.

Two renderings give the same text: `Renderer.render` builds one `Entry` (the per-exposure
stream uses it), and `render_columns` builds a whole population at once as arrays. The columnar
form sees an entry as a row of *segments*: strings interned in a `Segments` table (template
pieces, " " + a full name, " " + a value). A sentence is at most `W` segments; an entry is its
six sentences' segments, concatenated, minus the leading space. Texts, character spans and (see
`tokenizer.SegmentTokens`) token ids are then gathers over that table, with no Python per entry.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from knowlab.data.people import Person
from knowlab.data.plans import (
    N_SLOT_COLS, NAME_BARE, NAME_MARK, VALUE_BARE, VALUE_MARK, Plans, junctions_safe, plan_items,
)
from knowlab.data.schema import ATTRIBUTES
from knowlab.data.spec import AugSpec
from knowlab.data.templates import load_templates, name_fields, pronoun_fields

# Ordered pairs kept together by `coupleM` (App. A.1.1).
COUPLES = ((0, 1), (2, 3), (4, 5))

# Sentence modes: 0/1 = full name (male/female); 2 + 2 * pronoun code + female = a pronoun;
# PERSON_MODE + female = "the person" (reversed bios, whose first sentence holds the name back).
N_MODES = 10
PERSON_MODE = 8
PRONOUN_CODES = {"he": 0, "she": 1, "they": 2}
# Reversed bios (spec reverse6): the name comes last, in a sentence of its own after the sixth.
NAME_TAIL = " The person's name is " + NAME_MARK + "."


def person_fields(gender: str) -> dict[str, str]:
    """Template fields that refer to someone as "the person" (English only: see spec.py)."""
    return {"Subj": "The person", "subj": "the person", "Poss": "The person's", "poss": "the person's",
            "obj": "the person", "was": "was", "is": "is", "has": "has", "does": "does", "s": "s", "es": "es",
            "e": "" if gender == "male" else "e"}


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

    def _halves(self, attr_i: int, t_i: int, person: Person, named: bool, the_person: bool = False) -> tuple[str, str]:
        tpl = self.templates[ATTRIBUTES[attr_i]][t_i]
        if the_person:
            fields = person_fields(person.gender)
            return tpl.before.format(**fields), tpl.after.format(**fields)
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

    def render(self, person: Person, templates, order, fullname: bool, index: int = 0, reverse: int = 0) -> Entry:
        parts: list[str] = []
        spans: dict[str, tuple[int, int]] = {}
        pos = 0
        for slot, attr_i in enumerate(order):
            attr_i = int(attr_i)
            named = slot == reverse if reverse else fullname or slot == 0
            before, after = self._halves(attr_i, int(templates[attr_i]), person, named, bool(reverse) and slot == 0)
            value = person.value(ATTRIBUTES[attr_i], self.language)
            start = pos + len(before)
            spans[ATTRIBUTES[attr_i]] = (start, start + len(value))
            sentence = before + value + after
            if reverse == len(ATTRIBUTES) and slot == reverse - 1:
                sentence += NAME_TAIL.replace(NAME_MARK, person.name)
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

    @cached_property
    def plans(self) -> Plans:
        return self._plans(tail=False)

    @cached_property
    def tail_plans(self) -> Plans:
        """`plans` plus every sentence again with NAME_TAIL (only reverse6 needs these wider rows)."""
        return self._plans(tail=True)

    def _plans(self, tail: bool) -> Plans:
        literals: dict[str, int] = {"": 0}
        sentences: list[str] = []
        kind_base, attrs = [], []
        for a, attr in enumerate(ATTRIBUTES):
            kind_base.append(len(sentences))
            for tpl in self.templates[attr]:
                for mode in range(N_MODES):
                    gender = "female" if mode % 2 else "male"
                    if mode < 2:
                        fields = name_fields(NAME_MARK, gender, self.language)
                    elif mode >= PERSON_MODE:
                        fields = person_fields(gender)
                    else:
                        pronoun = ("he", "she", "they")[(mode - 2) // 2]
                        fields = pronoun_fields(pronoun, gender, self.language)
                    sentences.append(" " + tpl.before.format(**fields) + VALUE_MARK + tpl.after.format(**fields))
                    attrs.append(a)
        n = len(sentences)
        if tail:
            sentences += [s + NAME_TAIL for s in sentences]
            attrs += attrs
        rows = [plan_items(s, literals) for s in sentences]
        return Plans.build(rows, literals, attrs, kind_base, tail=n if tail else 0)


class Segments:
    """An interning table of segment strings; segment 0 is the empty string."""

    def __init__(self):
        self.strings: list[str] = [""]
        self._index: dict[str, int] = {"": 0}
        self._nchar: list[int] = [0]
        self.values: set[int] = set()  # segments used as values (their token spans are needed)
        # False once a segment boundary might not be a boundary of byte-level BPE words, so
        # token ids could not be gathered per segment (see `junctions_safe`).
        self.token_safe = True

    def __len__(self) -> int:
        return len(self.strings)

    def add_many(self, strings: Sequence[str], value: bool = False) -> np.ndarray:
        index, out = self._index, np.empty(len(strings), dtype=np.int32)
        for k, s in enumerate(strings):
            i = index.get(s)
            if i is None:
                i = index[s] = len(self.strings)
                self.strings.append(s)
                self._nchar.append(len(s))
            out[k] = i
        if value:
            self.values.update(out.tolist())
        return out

    def extend(self, strings: Sequence[str], value: bool = False) -> np.ndarray:
        """Append `strings` without interning them (for strings known to be distinct, like names)."""
        ids = np.arange(len(self.strings), len(self.strings) + len(strings), dtype=np.int32)
        self.strings.extend(strings)
        self._nchar.extend(map(len, strings))
        if value:
            self.values.update(ids.tolist())
        return ids

    @property
    def nchar(self) -> np.ndarray:
        return np.asarray(self._nchar, dtype=np.int32)

    @property
    def offset(self) -> np.ndarray:
        """Where a value starts inside its segment: 1 after the space of the spaced form."""
        return np.fromiter((s[:1] == " " for s in self.strings), dtype=np.int64, count=len(self.strings))

    def arrow(self):
        """The segments, then the segments without their first character, as one Arrow array."""
        import pyarrow as pa

        cached = getattr(self, "_arrow", None)
        if cached is None or cached[0] != len(self.strings):
            strings = self.strings
            cached = (len(strings), pa.array(strings + [s[1:] for s in strings], pa.string()))
            self._arrow = cached
        return cached[1]

    def texts(self, seg: np.ndarray):
        """The texts of rows of segments (rows x items), without their first character (the
        space that opens every sentence), as an Arrow string array."""
        import pyarrow as pa
        import pyarrow.compute as pc

        seg = seg.reshape(len(seg), -1)
        table = self.arrow()
        if len(seg) == 0:
            return pa.array([], pa.string())
        seg = seg[:, seg.any(axis=0)] if seg.shape[1] else seg
        flat = seg.astype(np.int64)
        first = np.argmax(flat != 0, axis=1)
        flat[np.arange(len(flat)), first] += len(self.strings)  # drop the first character
        width = flat.shape[1]
        offsets = pa.array(np.arange(len(flat) + 1, dtype=np.int32) * width)
        return pc.binary_join(pa.ListArray.from_arrays(offsets, table.take(pa.array(flat.reshape(-1)))), "")


@dataclass
class BioColumns:
    """Entries as arrays (see the module docstring); rows are person by person, entry by entry."""

    person: np.ndarray  # (E,) row index into the people that were rendered
    entry: np.ndarray  # (E,) 0..entries-1 within the person
    order: np.ndarray  # (E, 6) attribute indices in sentence order
    templates: np.ndarray  # (E, 6) template index per attribute (ATTRIBUTES order)
    seg: np.ndarray  # (E, 6, W) segment ids, sentence by sentence
    value_slot: np.ndarray  # (E, 6) per attribute (ATTRIBUTES order): its sentence slot
    value_pos: np.ndarray  # (E, 6) per attribute: the position of its value in that sentence
    spans: np.ndarray  # (E, 6, 2) per attribute: character span [start, end) in the text

    def __len__(self) -> int:
        return len(self.person)

    def value_items(self) -> np.ndarray:
        """(E, 6) per attribute: the index of its value segment in the flattened row."""
        return self.value_slot * self.seg.shape[2] + self.value_pos

    def take(self, rows) -> BioColumns:
        return BioColumns(*(getattr(self, f)[rows] for f in self.__dataclass_fields__))

    @staticmethod
    def concat(parts: list[BioColumns]) -> BioColumns:
        width = max(p.seg.shape[2] for p in parts)
        segs = [np.pad(p.seg, ((0, 0), (0, 0), (0, width - p.seg.shape[2]))) for p in parts]
        fields = {f: np.concatenate([getattr(p, f) for p in parts])
                  for f in BioColumns.__dataclass_fields__ if f != "seg"}
        return BioColumns(seg=np.concatenate(segs), **fields)


def _orders(spec: AugSpec, n: int, rng: np.random.Generator) -> np.ndarray:
    """Sentence orders for n entries: fixed, fully shuffled, or shuffled by pairs."""
    base = np.tile(np.arange(len(ATTRIBUTES)), (n, 1))
    if spec.base == "couple":
        pair_orders = rng.permuted(np.tile(np.arange(len(COUPLES)), (n, 1)), axis=1)
        return np.asarray(COUPLES)[pair_orders].reshape(n, len(ATTRIBUTES))
    if spec.permute:
        return rng.permuted(base, axis=1)
    return base


def _draws(spec: AugSpec, n: int, rng: np.random.Generator, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(templates (n, draws, 6), orders (n, entries, 6)): the only random draws of rendering."""
    m = spec.entries
    draws = m if spec.resample_templates else 1
    templates = rng.integers(0, counts, size=(n, draws, len(ATTRIBUTES)))
    orders = _orders(spec, n * m, rng).reshape(n, m, len(ATTRIBUTES))
    return templates, orders


def slot_table(
    segs: Segments,
    names: Sequence[str],
    values: Sequence[tuple[np.ndarray, Sequence[str]]],
    bare_names: bool,
    bare_values: bool,
    name_ids: np.ndarray | None = None,
) -> np.ndarray:
    """(people, N_SLOT_COLS) segment ids: " " + name, name, " " + value per attribute, value per
    attribute (bare forms only when asked for; 0 otherwise). `name_ids` reuses spaced names."""
    n = len(names)
    cols = np.zeros((n, N_SLOT_COLS), dtype=np.int32)
    cols[:, 0] = name_ids if name_ids is not None else segs.extend([" " + s for s in names])
    if bare_names:
        cols[:, 1] = segs.extend(list(names))
    for a, (codes, strings) in enumerate(values):
        codes = np.asarray(codes)
        cols[:, 2 + a] = segs.add_many([" " + s for s in strings], value=True)[codes]
        if bare_values:
            cols[:, 2 + len(ATTRIBUTES) + a] = segs.add_many(list(strings), value=True)[codes]
    return cols


def render_columns(
    names: Sequence[str],
    female: np.ndarray,
    pronoun: np.ndarray,
    values: Sequence[tuple[np.ndarray, Sequence[str]]],
    spec: AugSpec,
    rng: np.random.Generator,
    renderer: Renderer,
    segs: Segments,
    name_ids: np.ndarray | None = None,
) -> BioColumns:
    """All entries of `spec` for n people, as columns; draws exactly what `generate_entries` draws.

    `values[a]` is (code per person, strings) of attribute a in the renderer's language;
    `pronoun` holds PRONOUN_CODES; `name_ids`, if given, are the segments of " " + each name.
    """
    n, m = len(names), spec.entries
    plans = renderer.tail_plans if spec.reverse == len(ATTRIBUTES) else renderer.plans
    templates, orders = _draws(spec, n, rng, renderer.counts)
    slots = slot_table(segs, names, values, plans.uses(NAME_BARE), plans.uses(VALUE_BARE), name_ids)
    if not junctions_safe(plans, names, [v for _, strings in values for v in strings], sentences=True):
        segs.token_safe = False
    lit_seg = segs.add_many(plans.literals)

    E = n * m
    person = np.repeat(np.arange(n, dtype=np.int32), m)
    tpl = templates.reshape(E, -1) if spec.resample_templates else np.repeat(templates[:, 0], m, axis=0)
    order = orders.reshape(E, len(ATTRIBUTES))
    t_slot = np.take_along_axis(tpl, order, axis=1)
    fem = np.asarray(female, dtype=np.int64)[person][:, None]
    pron = np.asarray(pronoun, dtype=np.int64)[person][:, None]
    named = np.zeros((1, len(ATTRIBUTES)), dtype=bool)
    named[:, 0] = True
    if spec.fullname:
        named[:] = True
    if spec.reverse:  # the name waits until sentence reverse + 1 (or the closing NAME_TAIL)
        named[:] = False
        if spec.reverse < len(ATTRIBUTES):
            named[:, spec.reverse] = True
    mode = np.where(named, fem, 2 + 2 * pron + fem)
    if spec.reverse:
        mode[:, 0] = PERSON_MODE + fem[:, 0]
    kind = plans.kind_base[order] + t_slot * N_MODES + mode  # (E, 6)
    if spec.reverse == len(ATTRIBUTES):
        kind[:, -1] += plans.tail
    seg = plans.fill(kind, np.broadcast_to(person[:, None], kind.shape), slots, lit_seg)  # (E, 6, W)

    value_slot = np.argsort(order, axis=1).astype(np.int32)  # attribute -> its sentence slot
    value_pos = np.take_along_axis(plans.value_pos[kind], value_slot, axis=1)
    cols = BioColumns(person=person, entry=np.tile(np.arange(m), n).astype(np.int16), order=order.astype(np.int8),
                      templates=tpl, seg=seg, value_slot=value_slot, value_pos=value_pos,
                      spans=np.zeros((E, len(ATTRIBUTES), 2), dtype=np.int32))
    cols.spans[:] = char_spans(cols, segs)
    return cols


def char_spans(cols: BioColumns, segs: Segments) -> np.ndarray:
    """(E, 6, 2) character spans of the values in the texts (which drop the first space)."""
    flat = cols.seg.reshape(len(cols), -1)
    nchar = segs.nchar
    before = np.cumsum(nchar[flat], axis=1, dtype=np.int32)
    items = cols.value_items()
    vseg = np.take_along_axis(flat, items, axis=1)
    at = np.take_along_axis(before, items, axis=1) - nchar[vseg] - 1  # the text drops its first space
    return np.stack([at + segs.offset[vseg].astype(np.int32), at + nchar[vseg]], axis=2).astype(np.int32)


def people_inputs(people: Sequence[Person], language: str):
    """`render_columns` inputs from Person objects."""
    values = []
    for attr in ATTRIBUTES:
        index: dict[str, int] = {}
        codes = np.fromiter((index.setdefault(p.value(attr, language), len(index)) for p in people),
                            dtype=np.int64, count=len(people))
        values.append((codes, list(index)))
    female = np.array([p.gender != "male" for p in people], dtype=bool)
    pronoun = np.array([PRONOUN_CODES[p.pronoun] for p in people], dtype=np.int8)
    return [p.name for p in people], female, pronoun, values


def entries_from_columns(cols: BioColumns, person_ids: np.ndarray, segs: Segments,
                         chunk: int = 50_000) -> Iterator[Entry]:
    """`Entry` objects of columnar entries (for code that wants them one by one)."""
    for lo in range(0, len(cols), chunk):
        part = cols.take(slice(lo, lo + chunk))
        texts = segs.texts(part.seg).to_pylist()
        rows = zip(person_ids[part.person].tolist(), part.entry.tolist(), texts, part.spans.tolist(),
                   part.order.tolist(), part.templates.tolist())
        for pid, index, text, spans, order, templates in rows:
            yield Entry(
                person_id=pid,
                index=index,
                text=text,
                spans={a: (s[0], s[1]) for a, s in zip(ATTRIBUTES, spans)},
                order=tuple(order),
                templates=tuple(templates),
            )


def generate_entries(
    people: list[Person], spec: AugSpec, rng: np.random.Generator, renderer: Renderer | None = None
) -> Iterator[Entry]:
    """All entries of `spec` for `people`, person by person (entry order within a person kept)."""
    renderer = renderer or Renderer("fr" if spec.french else "en")
    if not people:
        _draws(spec, 0, rng, renderer.counts)
        return
    segs = Segments()
    cols = render_columns(*people_inputs(people, renderer.language), spec, rng, renderer, segs)
    yield from entries_from_columns(cols, np.array([p.id for p in people]), segs)


def fresh_entry(person: Person, spec: AugSpec, rng: np.random.Generator, renderer: Renderer) -> Entry:
    """One newly drawn entry (templates and order) for the per-exposure stream of Part 3.3."""
    templates = rng.integers(0, renderer.counts)
    order = _orders(spec, 1, rng)[0]
    return renderer.render(person, templates, order, spec.fullname, reverse=spec.reverse)
