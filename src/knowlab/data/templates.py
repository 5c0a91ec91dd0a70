"""Sentence templates (`templates/<language>.yaml`) and the fields that fill them.

Each template holds `{value}` once and exactly one reference to the person: `{Subj}`, `{subj}`,
`{Poss}`, `{poss}` or `{obj}`. The reference becomes the full name in the first sentence of an
entry (and in every sentence under `fullname`), otherwise a pronoun. `{was}`, `{is}`, `{has}`,
`{does}`, `{s}` and `{es}` agree with the subject, so every template reads right for he, she,
they and a name; French adds `{e}` for gender agreement.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

from knowlab.data.schema import ATTRIBUTES

TEMPLATE_DIR = Path(__file__).parent / "templates"
LANGUAGES = ("en", "fr")
PERSON_FIELDS = ("Subj", "subj", "Poss", "poss", "obj")
AGREEMENT_FIELDS = ("was", "is", "has", "does", "s", "es", "e")

_SINGULAR = {"was": "was", "is": "is", "has": "has", "does": "does", "s": "s", "es": "es"}
_PLURAL = {"was": "were", "is": "are", "has": "have", "does": "do", "s": "", "es": ""}
_EN_PRONOUNS = {
    "he": {"Subj": "He", "subj": "he", "Poss": "His", "poss": "his", "obj": "him", **_SINGULAR},
    "she": {"Subj": "She", "subj": "she", "Poss": "Her", "poss": "her", "obj": "her", **_SINGULAR},
    "they": {"Subj": "They", "subj": "they", "Poss": "Their", "poss": "their", "obj": "them", **_PLURAL},
}
# French is always grammatically singular; "iel" is the common neutral pronoun.
_FR_PRONOUNS = {
    "he": {"Subj": "Il", "subj": "il", "obj": "lui", "e": ""},
    "she": {"Subj": "Elle", "subj": "elle", "obj": "elle", "e": "e"},
    "they": {"Subj": "Iel", "subj": "iel", "obj": "iel", "e": "·e"},
}
_FR_PRONOUNS = {k: {**v, "Poss": v["Subj"], "poss": v["subj"], **_SINGULAR} for k, v in _FR_PRONOUNS.items()}


def pronoun_fields(pronoun: str, gender: str, language: str = "en") -> dict[str, str]:
    fields = dict((_FR_PRONOUNS if language == "fr" else _EN_PRONOUNS)[pronoun])
    fields.setdefault("e", "" if gender == "male" else "e")
    return fields


def name_fields(name: str, gender: str, language: str = "en") -> dict[str, str]:
    poss = f"{name}'s" if language == "en" else name
    return {
        "Subj": name, "subj": name, "Poss": poss, "poss": poss, "obj": name,
        **_SINGULAR, "e": "" if gender == "male" else "e",
    }


@dataclass(frozen=True)
class Template:
    text: str
    before: str  # the part before {value}, still holding person/agreement fields
    after: str

    def fields(self) -> set[str]:
        return {f for _, f, _, _ in string.Formatter().parse(self.text) if f}


def _split(text: str) -> Template:
    before, sep, after = text.partition("{value}")
    if not sep:
        raise ValueError(f"template without {{value}}: {text!r}")
    return Template(text=text, before=before, after=after)


@cache
def load_templates(language: str = "en") -> dict[str, tuple[Template, ...]]:
    if language not in LANGUAGES:
        raise ValueError(f"unknown template language {language!r}; valid: {', '.join(LANGUAGES)}")
    raw = yaml.safe_load((TEMPLATE_DIR / f"{language}.yaml").read_text(encoding="utf-8"))
    return {attr: tuple(_split(t) for t in raw[attr]) for attr in ATTRIBUTES}


def template_counts(language: str = "en") -> dict[str, int]:
    return {attr: len(ts) for attr, ts in load_templates(language).items()}
