"""Text surgery without a model: sentence splitting and shuffling, names <-> pronouns.

- `split_sentences` splits at . ! ? followed by a capitalised word, but not after titles
  ("Dr.", "St. Louis"), and after company suffixes, initials or dotted abbreviations ("Inc.",
  "J. R. R.", "D.C.") only when the next word is a usual sentence opener ("She", "The", the
  person's first name). Decimals ("3.5") never split: no space follows their dot.
- `shuffle_document` shuffles the sentences with a seed, makes sure the new first sentence
  names the person in full, and turns later full-name mentions into the person's pronoun:
  the same idea as the paper's `augmentation_permutation2`, written independently.
- `pronouns_to_name` is bioR's `fullname`: every pronoun of the person becomes the full name.
"""

from __future__ import annotations

import random
import re

from knowlab.augment.base import Rewriter

# Never the end of a sentence: they introduce the next word ("St. Louis", "Dr. Smith").
TITLES = frozenset("mr mrs ms dr prof st mt ft rev gen col capt lt sgt gov sen rep hon pres vs no fig approx".split())
# Often inside a sentence, sometimes at its end ("...at Apple Inc. She moved...").
SUFFIXES = frozenset(
    "inc ltd co corp llc plc bros jr sr etc dept univ ave blvd rd al assn intl "
    "jan feb mar apr jun jul aug sep sept oct nov dec".split()
)
# Capitalised words that open sentences in biographies and documents.
OPENERS = frozenset(
    "he she they his her their him it its the a an in on at after before during while when then "
    "later there this that these those following born as with from since today currently now also "
    "besides furthermore moreover however additionally meanwhile i we our my throughout outside "
    "beyond apart over under upon although though despite known having being".split()
)

_CANDIDATE = re.compile(r"([.!?])([\"')\]]*)(\s+)(?=[\"'(\[]?[A-Z0-9])")
_PREV_TOKEN = re.compile(r"(\S+)$")
_NEXT_WORD = re.compile(r"[\"'(\[]?([A-Za-z]+)")

PRONOUNS: dict[str, dict[str, str]] = {
    "he": {"subj": "he", "obj": "him", "poss": "his", "poss_alone": "his"},
    "she": {"subj": "she", "obj": "her", "poss": "her", "poss_alone": "hers"},
    "they": {"subj": "they", "obj": "them", "poss": "their", "poss_alone": "theirs"},
}
# Words after which a name is an object ("worked with Anya" -> "worked with her").
_PREPOSITIONS = frozenset(
    "to with by for about of from at on in into like than between among toward towards upon after "
    "before behind beside under over alongside against around through without".split()
)
# Words that can follow an object "her" but rarely a possessive one ("gave her a book").
_AFTER_OBJECT_HER = frozenset(
    "a an the to in at on for with and or but as by from that this into about after before during "
    "when while since so because who which up out back again too very well also is was has had "
    "will would yesterday today tomorrow once twice there here now then first last later soon "
    "recently often".split()
)
_PLURAL_TO_SINGULAR = {"were": "was", "are": "is", "have": "has", "do": "does",
                       "weren't": "wasn't", "aren't": "isn't", "haven't": "hasn't", "don't": "doesn't"}
_SINGULAR_TO_PLURAL = {v: k for k, v in _PLURAL_TO_SINGULAR.items()}


def _is_boundary(text: str, dot: int, punct: str, after: int, first_names: frozenset[str]) -> bool:
    if punct in "!?":
        return True
    prev = _PREV_TOKEN.search(text, 0, dot)
    token = prev.group(1).lstrip("\"'([") if prev else ""
    word = token.lower()
    nxt = _NEXT_WORD.match(text, after)
    opener = bool(nxt) and (nxt.group(1).lower() in OPENERS or nxt.group(1) in first_names)
    if word in TITLES:
        return False
    is_initial = len(token) == 1 and token.isalpha() and token.isupper()
    dotted = "." in token and re.fullmatch(r"(?:[A-Za-z]\.)+[A-Za-z]", token) is not None  # U.S, D.C, e.g
    if word in SUFFIXES or is_initial or dotted:
        return opener
    return True


def split_sentences(text: str, name: str | None = None) -> list[str]:
    """Sentences of `text`, whitespace-trimmed; `name`'s first word also counts as an opener."""
    first_names = frozenset([name.split()[0]]) if name and name.split() else frozenset()
    out, start = [], 0
    for m in _CANDIDATE.finditer(text):
        if _is_boundary(text, m.start(1), m.group(1), m.end(), first_names):
            out.append(text[start:m.end(2)].strip())
            start = m.end()
    tail = text[start:].strip()
    if tail:
        out.append(tail)
    return [s for s in out if s]


def _capitalise(word: str) -> str:
    return word[:1].upper() + word[1:]


def _name_pattern(name: str) -> re.Pattern:
    return re.compile(r"(?<![\w'])" + re.escape(name) + r"(?P<poss>['’]s)?(?!\w)")


def name_to_pronoun(sentence: str, name: str, pronoun: str) -> str:
    """Every full-name mention in `sentence` becomes `pronoun` in the right case."""
    forms = PRONOUNS[pronoun]

    def repl(m: re.Match) -> str:
        before = sentence[: m.start()]
        at_start = not before.strip(" \"'([") or re.search(r"[.!?][\"')\]]*\s+[\"'(\[]*$", before) is not None
        if m.group("poss"):
            word = forms["poss"]
        else:
            prev = re.search(r"(\w+)\W*$", before)
            after = sentence[m.end():].lstrip()
            ends_clause = not after or after[0] in ".,;:!?)"
            is_object = not at_start and ((prev and prev.group(1).lower() in _PREPOSITIONS) or ends_clause)
            word = forms["obj"] if is_object else forms["subj"]
        return _capitalise(word) if at_start else word

    out = _name_pattern(name).sub(repl, sentence)
    if pronoun == "they":  # "Anya was" became "they was": the verb follows the pronoun's number
        out = re.sub(r"\b([Tt]hey) (was|is|has|does|wasn't|isn't|hasn't|doesn't)\b",
                     lambda m: f"{m.group(1)} {_SINGULAR_TO_PLURAL[m.group(2)]}", out)
    return out


def _pronoun_regex(pronouns: tuple[str, ...]) -> re.Pattern:
    words = sorted({w for p in pronouns for w in PRONOUNS[p].values()}, key=len, reverse=True)
    subj = "|".join(PRONOUNS[p]["subj"] for p in pronouns)
    return re.compile(
        rf"\b(?:(?P<contr>{subj})(?P<tail>['’](?:s|re|ve|ll|d))|(?P<word>{'|'.join(words)}))\b",
        re.IGNORECASE,
    )


def _to_name(m: re.Match, text: str, name: str, poss_words: set[str]) -> str:
    """The replacement of one pronoun match of `_pronoun_regex` by the name."""
    if m.group("contr"):
        tail = m.group("tail").lower().replace("’", "'")
        return name + {"'re": " is", "'ve": " has", "'ll": " will"}.get(tail, tail)
    word = m.group("word").lower()
    if word in poss_words:
        return f"{name}'s"
    if word == "her":
        nxt = re.match(r"\s*([\w']+)", text[m.end():])
        if nxt and nxt.group(1).lower() not in _AFTER_OBJECT_HER:
            return f"{name}'s"
    return name


def _singular_verbs(text: str, name: str) -> str:
    agree = re.compile(re.escape(name) + r" (" + "|".join(map(re.escape, _PLURAL_TO_SINGULAR)) + r")\b")
    return agree.sub(lambda m: f"{name} {_PLURAL_TO_SINGULAR[m.group(1)]}", text)


def pronouns_to_name(text: str, name: str, pronouns: tuple[str, ...] = ("he", "she")) -> str:
    """bioR `fullname`: every subject, object and possessive pronoun of `pronouns` becomes the name.

    Possessives become "Name's"; "her" is possessive unless an object reading is likely (it
    ends a clause or precedes an article, preposition or conjunction); a plural verb right
    after "they" is made singular ("they were" -> "Name was"). Reflexives are kept.
    """
    poss_words = {PRONOUNS[p][k] for p in pronouns for k in ("poss", "poss_alone")} - {"her"}
    out = _pronoun_regex(pronouns).sub(lambda m: _to_name(m, text, name, poss_words), text)
    return _singular_verbs(out, name) if "they" in pronouns else out


def _name_first(sentence: str, name: str, pronoun: str | None) -> str | None:
    """`sentence` with its first pronoun of the person made the full name, or None if it has none."""
    if _name_pattern(name).search(sentence):
        return sentence
    pronouns = (pronoun,) if pronoun else ("he", "she", "they")
    m = _pronoun_regex(pronouns).search(sentence)
    if not m:
        return None
    poss_words = {PRONOUNS[p][k] for p in pronouns for k in ("poss", "poss_alone")} - {"her"}
    out = sentence[: m.start()] + _to_name(m, sentence, name, poss_words) + sentence[m.end():]
    return _singular_verbs(out, name) if "they" in pronouns else out


def shuffle_document(text: str, rng: random.Random, name: str | None = None, pronoun: str | None = None) -> str:
    """The sentences of `text` in a random order; with `name`, the first sentence names the person
    and later full-name mentions become `pronoun` (when given)."""
    sentences = split_sentences(text, name)
    if len(sentences) < 2:
        return " ".join(sentences)
    rng.shuffle(sentences)
    if name:
        # The new first sentence must introduce the person: take the first one that names them
        # or refers to them by a pronoun, and move it to the front if needed.
        for i, sentence in enumerate(sentences):
            named = _name_first(sentence, name, pronoun)
            if named is not None:
                sentences.pop(i)
                sentences.insert(0, named)
                break
        if pronoun:
            sentences[1:] = [name_to_pronoun(s, name, pronoun) for s in sentences[1:]]
    return " ".join(sentences)


class ShuffleRewriter(Rewriter):
    """`shuffle`: the "prompt" is the document itself; its sentences come back shuffled."""

    name = "shuffle"
    needs_prompt = False

    def _generate(self, prompts: list[str], seeds: list[int]) -> list[str]:
        return [shuffle_document(p, random.Random(s)) for p, s in zip(prompts, seeds)]

    def shuffle_row(self, text: str, seed: int, name: str | None = None, pronoun: str | None = None) -> str:
        return shuffle_document(text, random.Random(seed), name, pronoun)
