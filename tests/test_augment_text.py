"""Model-free pieces of knowlab.augment: sentence splitting and shuffling, names and pronouns,
fact matching and surface forms, rewriter SPEC strings."""

import random

import pytest

from knowlab.augment.facts import date_forms, find_fact, load_aliases, locate, missing_facts, surface_forms
from knowlab.augment.rewriter import SamplingParams, cut_at_stop, load_rewriter, parse_spec
from knowlab.augment.shuffle import name_to_pronoun, pronouns_to_name, shuffle_document, split_sentences
from knowlab.data.people import Person
from knowlab.errors import KnowlabError

NAME = "Anya Briar Forger"
DOC = ("Anya Briar Forger was born on October 2, 1996. She worked at Apple Inc. in Cupertino. "
       "She lived in St. Louis, MO with Dr. Smith. She read J. R. R. Tolkien and scored 3.5 points. "
       "Her favourite city is Washington, D.C. She joined Acme Corp. She left in 2001!")


def person(**kw) -> Person:
    base = dict(id=7, first="Anya", middle="Briar", last="Forger", gender="female", pronoun="she",
                birth_year=1996, birth_month=10, birth_day=2, birth_city="Princeton, NJ",
                university="Massachusetts Institute of Technology", major="Art", company="Meta Platforms",
                company_city="Menlo Park, CA")
    return Person(**{**base, **kw})


def test_split_sentences_keeps_abbreviations_initials_and_decimals_together():
    assert split_sentences(DOC, NAME) == [
        "Anya Briar Forger was born on October 2, 1996.",
        "She worked at Apple Inc. in Cupertino.",
        "She lived in St. Louis, MO with Dr. Smith.",
        "She read J. R. R. Tolkien and scored 3.5 points.",
        "Her favourite city is Washington, D.C.",
        "She joined Acme Corp.",
        "She left in 2001!",
    ]
    # a suffix ends a sentence when a usual opener or the person's first name follows
    assert split_sentences("He joined Acme Corp. Anya stayed.", NAME) == ["He joined Acme Corp.", "Anya stayed."]
    assert split_sentences("Born Jan. 5 in Mt. Vernon. Then left.") == ["Born Jan. 5 in Mt. Vernon.", "Then left."]


def test_shuffle_puts_the_name_first_and_pronouns_later_and_is_seeded():
    out = shuffle_document(DOC, random.Random(3), NAME, "she")
    sentences = split_sentences(out, NAME)
    assert sorted(s.replace(NAME, "She") for s in sentences) == sorted(
        s.replace(NAME, "She") for s in split_sentences(DOC, NAME))
    assert sentences[0].count(NAME) == 1 and NAME not in " ".join(sentences[1:])
    assert "She was born on October 2, 1996." in sentences[1:] or sentences[0].endswith("October 2, 1996.")
    assert out == shuffle_document(DOC, random.Random(3), NAME, "she")
    assert len({shuffle_document(DOC, random.Random(s), NAME, "she") for s in range(6)}) > 1
    # the new first sentence names the person even if it opened with a possessive
    first = shuffle_document("X is here. Her city is Rome.", random.Random(0), NAME, "she")
    assert f"{NAME}'s city is Rome." in first


def test_name_to_pronoun_and_back():
    assert name_to_pronoun(f"{NAME} moved. People liked {NAME}. {NAME}'s dog ran.", NAME, "he") == \
        "He moved. People liked him. His dog ran."
    assert name_to_pronoun(f"{NAME} was happy.", NAME, "they") == "They were happy."
    text = "She was born in Rome. Her parents gave her a book. He met her yesterday. Their house is theirs."
    assert pronouns_to_name(text, "Bo Li", ("he", "she", "they")) == (
        "Bo Li was born in Rome. Bo Li's parents gave Bo Li a book. Bo Li met Bo Li yesterday. "
        "Bo Li's house is Bo Li's.")
    assert pronouns_to_name("They were there; they're fine. The shell is here.", "Bo Li", ("they",)) == \
        "Bo Li was there; Bo Li is fine. The shell is here."
    assert pronouns_to_name("They were there.", "Bo Li") == "They were there."  # not the person's pronoun


def test_facts_exact_case_and_whole_word():
    text = "She studied Artificial Intelligence at MIT in Princeton, NJ."
    at = text.index("Princeton, NJ")
    assert find_fact(text, "Princeton, NJ") == (at, at + len("Princeton, NJ"))
    assert find_fact(text, "princeton, nj") is None
    assert find_fact(text, "princeton, nj", case_insensitive=True) == (at, at + len("Princeton, NJ"))
    assert find_fact(text, "Art") == (12, 15)
    assert find_fact(text, "Art", whole_word=True) is None
    assert missing_facts(text, ["MIT", "Princeton, NJ", "Yale"]) == ["Yale"]
    assert missing_facts(text, ["Princeton, N.J."]) == ["Princeton, N.J."]  # altered, so missing


def test_surface_forms_dates_aliases_and_earliest_span(tmp_path):
    assert date_forms(1996, 10, 2)[:4] == ["October 2, 1996", "October 2nd, 1996", "2 October 1996", "2nd October 1996"]
    assert "11th of November, 2001" in date_forms(2001, 11, 11) and "October 23rd, 1996" in date_forms(1996, 10, 23)
    aliases_file = tmp_path / "aliases.yaml"
    aliases_file.write_text("Massachusetts Institute of Technology: [MIT]\nMeta Platforms: Meta\n")
    aliases = load_aliases(aliases_file)
    p = person()
    strict = surface_forms(p)
    assert strict["birth_date"] == ["October 2, 1996"] and strict["university"] == ["Massachusetts Institute of Technology"]
    loose = surface_forms(p, date_variants=True, aliases=aliases)
    text = ("Anya, born 2nd October 1996 in Princeton, NJ, studied Art at MIT. She works at Meta Platforms "
            "(Meta) in Menlo Park, CA.")
    spans, missing = locate(text, loose)
    assert missing == []
    assert text[slice(*spans["birth_date"])] == "2nd October 1996"
    assert text[slice(*spans["university"])] == "MIT"
    assert text[slice(*spans["company"])] == "Meta Platforms"  # earliest match, longest at a tie
    spans, missing = locate(text, strict)
    assert missing == ["birth_date", "university"]
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(KnowlabError, match="bad.json: not valid JSON"):
        load_aliases(tmp_path / "bad.json")


def test_rewriter_specs():
    assert parse_spec("shuffle") == ("shuffle", "", {})
    assert parse_spec("hf:/models/llama#batch_size=4,device=cpu") == ("hf", "/models/llama", {"batch_size": "4", "device": "cpu"})
    assert parse_spec("http://127.0.0.1:8000/v1#model=m") == ("openai", "http://127.0.0.1:8000/v1", {"model": "m"})
    assert parse_spec("openai:https://h/v1/chat/completions") == ("openai", "https://h/v1/chat/completions", {})
    assert parse_spec("hf:/a#b/c") == ("hf", "/a#b/c", {})  # a '#' that is not options stays in the path
    for bad in ("", "gpt4", "hf:", "openai:ftp://x", "vllm:/x"):
        with pytest.raises(KnowlabError, match="valid|http"):
            parse_spec(bad)
    with pytest.raises(KnowlabError, match="unknown option"):
        load_rewriter("shuffle#colour=red")
    with pytest.raises(KnowlabError, match="not a local model folder"):
        load_rewriter("hf:/nonexistent/model")
    with pytest.raises(KnowlabError, match="top_p"):
        load_rewriter("shuffle", SamplingParams(top_p=0))
    assert cut_at_stop("a bio.\n\nText: next", ["\n\n", "Text:"]) == "a bio."
    shuffled = load_rewriter("shuffle").rewrite(["One. Two. Three. Four."], [5])
    assert sorted(shuffled[0].split()) == ["Four.", "One.", "Three.", "Two."]
