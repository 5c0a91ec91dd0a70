"""Augmentation specs such as `multi5+permute+fullname` ([P] Section 4.2, App. A.1).

Grammar: a base, then modifiers, joined by `+`, each at most once:
- base `single` (one entry), `multiM` (M entries, templates resampled per entry) or
  `coupleM` (M entries; the three ordered attribute pairs stay together, pair order shuffled);
- `permute` on multiM (each entry's six sentences shuffled), `permuteP` on single (the same six
  sentences shuffled P times, giving P entries);
- `fullname` (every pronoun replaced by the full name);
- `french` (the entry written with knowlab's French templates and French dates, names and other
  values unchanged; a stand-in for the paper's English-to-French translation, whose details the
  paper omits);
- `reverseK` (Part 3.2, App. A.1.1), K = 1..6: the name is held back. The first sentence says
  "The person"; with K < 6 the full name first appears in sentence K + 1, with K = 6 only in a
  closing "The person's name is ...". Built on multi5 unless a multiM base is given, so
  `reverse6` means multi5+reverse6 and `permute+reverse6` multi5+permute+reverse6.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from knowlab.errors import KnowlabError

VALID_PARTS = ("single, multiM, coupleM, permute (with multiM), permuteP (with single), fullname, french, "
               "reverseK (K = 1..6, on multiM)")
REVERSE_BASE = ("multi", 5)  # what reverseK is built on when the spec names no base ([P] App. A.1.1)

_PART = re.compile(r"^(single|multi|couple|permute|fullname|french|reverse)(\d*)$")


@dataclass(frozen=True)
class AugSpec:
    base: str  # "single" | "multi" | "couple"
    entries: int  # entries per person
    permute: bool
    fullname: bool
    french: bool
    reverse: int = 0  # 0, or the sentence (1..5) after which the name first appears; 6 = at the end

    @property
    def name(self) -> str:
        if self.reverse:
            parts = [] if (self.base, self.entries) == REVERSE_BASE else [f"{self.base}{self.entries}"]
            return "+".join(parts + ["permute"] * self.permute + [f"reverse{self.reverse}"])
        if self.base == "single":
            parts = ["single"] + ([f"permute{self.entries}"] if self.permute else [])
        else:
            parts = [f"{self.base}{self.entries}"] + (["permute"] if self.permute else [])
        parts += ["fullname"] * self.fullname + ["french"] * self.french
        return "+".join(parts)

    @property
    def resample_templates(self) -> bool:
        """single+permuteP reuses one set of six sentences; multi and couple draw new ones."""
        return self.base != "single"


def parse_spec(text: str) -> AugSpec:
    """Parse a spec string; any bad part is a `KnowlabError` naming it and the valid parts."""
    if not isinstance(text, str) or not text.strip():
        raise KnowlabError(f"empty augmentation spec; valid parts: {VALID_PARTS}")
    parts = [p.strip() for p in text.strip().split("+")]
    base, entries = None, 1
    permute_count: int | None = None
    flags = {"fullname": False, "french": False}
    reverse = 0
    seen: set[str] = set()
    for part in parts:
        m = _PART.match(part)
        if not m:
            raise KnowlabError(f"unknown augmentation part '{part}' in '{text}'; valid parts: {VALID_PARTS}")
        word, digits = m.group(1), m.group(2)
        if word in seen:
            raise KnowlabError(f"augmentation part '{word}' appears twice in '{text}'")
        seen.add(word)
        if word in ("single", "multi", "couple"):
            if base is not None:
                raise KnowlabError(f"'{text}' has two bases ('{base}' and '{word}'); use one of single, multiM, coupleM")
            if word == "single" and digits:
                raise KnowlabError(f"'{part}' takes no count; did you mean multi{digits} or single+permute{digits}?")
            if word != "single":
                if not digits or int(digits) < 1:
                    raise KnowlabError(f"'{word}' needs a count of at least 1, e.g. {word}5")
                entries = int(digits)
            base = word
        elif word == "reverse":
            if not digits or not 1 <= int(digits) <= 6:
                raise KnowlabError(f"'{part}' needs a count from 1 to 6: reverse1, reverse2 or reverse6")
            reverse = int(digits)
        elif word == "permute":
            permute_count = int(digits) if digits else 0
            if digits and permute_count < 1:
                raise KnowlabError("'permute' needs a count of at least 1 on single, e.g. single+permute2")
        else:
            if digits:
                raise KnowlabError(f"'{part}' takes no count; use '{word}'")
            flags[word] = True
    if base is None and reverse:
        base, entries = REVERSE_BASE
    if base is None:
        raise KnowlabError(f"'{text}' has no base; start with single, multiM or coupleM (e.g. single+{parts[0]})")
    permute = permute_count is not None
    if permute:
        if base == "couple":
            raise KnowlabError("'couple' already shuffles the attribute pairs; it cannot be combined with permute")
        if base == "single":
            if permute_count == 0:
                raise KnowlabError("on single, permute needs a count: single+permute1, single+permute2, ...")
            entries = permute_count
        elif permute_count:
            raise KnowlabError(f"on {base}{entries}, use plain 'permute' (every entry is shuffled once)")
    if reverse:
        if base != "multi":
            raise KnowlabError(f"reverse{reverse} is built on multiM bios (e.g. multi5+reverse{reverse}), not on {base}")
        clash = [f for f, on in flags.items() if on]
        if clash:
            raise KnowlabError(f"reverse{reverse} cannot be combined with '{clash[0]}': it holds the name back")
    return AugSpec(base=base, entries=entries, permute=permute, reverse=reverse, **flags)


# The 16 bioS datasets of the paper's Figure 3, and the couple sets of Figure 6.
FIGURE3_VARIANTS = (
    "single",
    "single+fullname",
    "single+permute1",
    "single+permute2",
    "single+permute5",
    "single+permute1+fullname",
    "single+permute2+fullname",
    "single+permute5+fullname",
    "multi2",
    "multi2+fullname",
    "multi2+permute",
    "multi2+permute+fullname",
    "multi5",
    "multi5+fullname",
    "multi5+permute",
    "multi5+permute+fullname",
)
COUPLE_VARIANTS = ("couple1", "couple2", "couple5")
# The reversed bios of Part 3.2's inverse search ([P] §5, App. A.1.1).
REVERSE_VARIANTS = ("reverse1", "reverse2", "reverse6", "permute+reverse6")
