"""Sentence plans: a sentence as a row of items (literal strings and name/value slots), and
whether byte-level BPE cuts a word at every item boundary.

`bios.py` (bio sentences) and `dataset.py` (QA sentences) cut their templates into plans; a text
is then a gather over interned segments, and its token ids are the concatenation of the
segments' token ids exactly when `junctions_safe` holds (see `tokenizer.SegmentTokens`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from knowlab.data.schema import ATTRIBUTES

# Markers standing for the full name and the value while templates are cut into segments.
NAME_MARK, VALUE_MARK = "\x01", "\x02"
# Item codes of a plan: a literal is its index (>= 0); slots are negative.
NAME_SPACED, NAME_BARE, VALUE_SPACED, VALUE_BARE = -1, -2, -3, -4


def plan_items(sentence: str, literals: dict[str, int]) -> list[int]:
    """Cut `" " + sentence` (holding NAME_MARK / VALUE_MARK) into plan items.

    A slot preceded by a space takes that space (" " + content, the *spaced* form), so a
    literal never ends with the space before a value: that is where byte-level BPE cuts words.
    Empty literals are kept so that every slot sits between two literal items.
    """
    parts = re.split(f"([{NAME_MARK}{VALUE_MARK}])", sentence)
    items: list[int] = []
    for k, part in enumerate(parts):
        if k % 2 == 0:
            lit = part[:-1] if k + 1 < len(parts) and part.endswith(" ") else part
            items.append(literals.setdefault(lit, len(literals)))
        else:
            spaced = parts[k - 1].endswith(" ")
            if part == NAME_MARK:
                items.append(NAME_SPACED if spaced else NAME_BARE)
            else:
                items.append(VALUE_SPACED if spaced else VALUE_BARE)
    return items


# Columns of a person's slot table (`slot_table`): the name's spaced and bare segments, then
# the six values' spaced segments, then their bare segments.
N_SLOT_COLS = 2 + 2 * len(ATTRIBUTES)


@dataclass
class Plans:
    """Sentences (kinds) as rows of `width` items; for bios every (attribute, template, mode)."""

    literals: list[str]  # literal index -> string
    items: np.ndarray  # (kinds, width) int32 item codes, padded with the empty literal
    attr: np.ndarray  # (kinds,) the attribute whose value the sentence holds
    kind_base: np.ndarray  # (6,) first kind of each attribute: kind = base + t * N_MODES + mode
    tail: int = 0  # reversed bios: kind + tail is the same sentence followed by NAME_TAIL (0 = none)

    @staticmethod
    def build(rows: list[list[int]], literals: dict[str, int], attr, kind_base, tail: int = 0) -> Plans:
        width = max(len(r) for r in rows)
        items = np.zeros((len(rows), width), dtype=np.int32)
        for k, r in enumerate(rows):
            items[k, : len(r)] = r
        return Plans(list(literals), items, np.asarray(attr, dtype=np.int64),
                     np.asarray(kind_base, dtype=np.int64), tail)

    @property
    def width(self) -> int:
        return self.items.shape[1]

    @cached_property
    def value_pos(self) -> np.ndarray:
        """(kinds,) position of the value item in each row."""
        return np.argmax((self.items == VALUE_SPACED) | (self.items == VALUE_BARE), axis=1).astype(np.int32)

    @cached_property
    def slot_col(self) -> np.ndarray:
        """(kinds, width): a literal's index, or -(1 + column of the person's slot table)."""
        a, items = self.attr[:, None], self.items
        col = np.select(
            [items == NAME_SPACED, items == NAME_BARE, items == VALUE_SPACED, items == VALUE_BARE],
            [0, 1, 2 + a, 2 + len(ATTRIBUTES) + a], default=-1)
        return np.where(self.items >= 0, self.items, -1 - col).astype(np.int32)

    def uses(self, code: int) -> bool:
        return bool((self.items == code).any())

    def fill(self, kind: np.ndarray, person: np.ndarray, slots: np.ndarray, lit_seg: np.ndarray) -> np.ndarray:
        """Segment ids (kind.shape + (width,)) of sentences `kind` of people `person` (same shape
        as kind), given each person's slot table `slots` (people, N_SLOT_COLS)."""
        t = self.slot_col[kind]
        base = (len(lit_seg) - 1) + person.astype(np.int32) * np.int32(N_SLOT_COLS)
        idx = np.where(t >= 0, t, base[..., None] - t)
        return np.concatenate([lit_seg, slots.reshape(-1)]).astype(np.int32)[idx]


def _cat(ch: str) -> str:
    """The character classes of the GPT-2 pre-tokenizer regex that decide where words end."""
    if ch == " ":
        return "SP"
    if ch.isspace():
        return "S"
    if ch == "'":
        return "'"
    return "L" if ch.isalpha() else "N" if ch.isnumeric() else "O"


def _safe(left: str, right: tuple[str, str | None]) -> bool:
    r"""Whether byte-level BPE always cuts a word between a segment ending in class `left` and
    one starting with classes `right` (its first char, and its second if the first is a space).

    The pre-tokenizer splits `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`:
    a single space before a non-space always opens a word, and a letter, digit and other run
    ends where the class changes (an apostrophe may open a contraction, so it may not end a
    segment).
    """
    first, second = right
    if left in ("SP", "S", "'"):
        return False
    if first == "SP":
        return second not in (None, "SP", "S")
    if first == "S":
        return False
    return left != ("O" if first == "'" else first)


def _content_cats(strings) -> tuple[set[str], set[tuple[str, str | None]], set[tuple[str, str | None]]]:
    """Last-char classes, and first classes of the spaced and bare forms, of slot contents."""
    if not all(strings):
        return {"SP"}, {("SP", None)}, {("SP", None)}
    last, firsts, bare = {s[-1] for s in strings}, {s[:2] for s in strings}, set()
    last_c = {_cat(c) for c in last}
    spaced_c = {("SP", _cat(f[0])) for f in firsts}
    for f in firsts:
        bare.add((_cat(f[0]), _cat(f[1]) if f[0] == " " and len(f) > 1 else None))
    return last_c, spaced_c, bare


def _lit_cats(lit: str):
    return {_cat(lit[-1])}, {(_cat(lit[0]), _cat(lit[1]) if lit[0] == " " and len(lit) > 1 else None)}


def junctions_safe(plans: Plans, names: Sequence[str], values: Sequence[str], sentences: bool) -> bool:
    """Whether every segment boundary of every plan (and, with `sentences`, between sentences)
    is a word boundary of byte-level BPE, so texts tokenize as the concatenation of segments."""
    name_c, value_c = _content_cats(names), _content_cats(values)
    slot = {NAME_SPACED: (name_c[0], name_c[1]), NAME_BARE: (name_c[0], name_c[2]),
            VALUE_SPACED: (value_c[0], value_c[1]), VALUE_BARE: (value_c[0], value_c[2])}
    lit_c = [_lit_cats(s) if s else None for s in plans.literals]
    checked: set[tuple] = set()
    lasts, firsts = set(), set()
    for row in {tuple(r) for r in plans.items.tolist()}:
        cats = [slot[i] if i < 0 else lit_c[i] for i in row]
        cats = [c for c in cats if c is not None]
        if not cats:
            return False
        firsts |= cats[0][1]
        lasts |= cats[-1][0]
        for (left, _), (_, right) in zip(cats, cats[1:]):
            checked.update((a, b) for a in left for b in right)
    if any(f[0] != "SP" for f in firsts):
        return False  # a text must start with the space it drops
    if sentences:
        checked.update((a, b) for a in lasts for b in firsts)
    return all(_safe(a, b) for a, b in checked)
