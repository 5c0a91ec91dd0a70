"""Augmentation invariants, spans, and the per-exposure renderer, on freshly sampled people."""

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from knowlab.data.bios import COUPLES, Renderer, fresh_entry, generate_entries
from knowlab.data.people import sample_people
from knowlab.data.pools import Pools, load_pools
from knowlab.data.schema import ATTRIBUTES
from knowlab.data.spec import FIGURE3_VARIANTS, parse_spec
from knowlab.errors import KnowlabError

PRONOUN_WORDS = re.compile(r"\b(he|she|they|him|his|her|them|their|He|She|They|His|Her|Their)\b")


def _people(n=30, seed=0, pronouns="he-she-they"):
    return sample_people(n, np.random.default_rng(seed), pronouns)


def _entries(spec_text, n=30, seed=0):
    people = _people(n, seed)
    spec = parse_spec(spec_text)
    return people, spec, list(generate_entries(people, spec, np.random.default_rng(seed + 1)))


def _sentences(entry):
    """The six sentences, split at the known sentence boundaries (values contain no periods)."""
    return [s + "." for s in entry.text[:-1].split(". ")]


@pytest.mark.parametrize("spec_text", FIGURE3_VARIANTS + ("couple1", "couple2", "couple5", "multi2+french"))
def test_every_fact_is_in_its_bio_at_the_recorded_span(spec_text):
    people, spec, entries = _entries(spec_text)
    assert len(entries) == len(people) * spec.entries
    by_id = {p.id: p for p in people}
    for e in entries:
        person = by_id[e.person_id]
        for attr in ATTRIBUTES:
            start, end = e.spans[attr]
            assert e.text[start:end] == person.value(attr, "fr" if spec.french else "en")
        assert len(_sentences(e)) == 6
        first = _sentences(e)[0]
        assert person.name in first, "the full name stays in the first sentence"


def test_single_has_fixed_order_and_random_templates():
    people, _, entries = _entries("single", n=200)
    assert all(e.order == tuple(range(6)) for e in entries)
    # templates are drawn per person, never one fixed template for everyone
    for i in range(6):
        assert len({e.templates[i] for e in entries}) > 10
    # only the first sentence names the person
    for e, p in zip(entries, people):
        assert sum(p.name in s for s in _sentences(e)) == 1


def test_multi_resamples_templates_per_entry():
    _, _, entries = _entries("multi5", n=40)
    by_person = {}
    for e in entries:
        by_person.setdefault(e.person_id, []).append(e.templates)
    assert all(len(ts) == 5 for ts in by_person.values())
    distinct = [len(set(ts)) for ts in by_person.values()]
    assert min(distinct) == 5  # 6 independent draws of ~50 each: equal rows are practically impossible


def test_single_permute_reuses_the_same_six_sentences():
    people, _, entries = _entries("single+permute5", n=30)
    by_person = {}
    for e in entries:
        by_person.setdefault(e.person_id, []).append(e)
    for es in by_person.values():
        assert len({e.templates for e in es}) == 1
        assert len({e.order for e in es}) > 1
    orders = {e.order for e in entries}
    assert len(orders) > 20


def test_permute_keeps_facts_and_puts_the_name_in_the_first_sentence():
    people, _, entries = _entries("multi5+permute", n=30)
    by_id = {p.id: p for p in people}
    for e in entries:
        assert sorted(e.order) == list(range(6))
        sentences = _sentences(e)
        assert by_id[e.person_id].name in sentences[0]
        assert all(by_id[e.person_id].name not in s for s in sentences[1:])


def test_fullname_leaves_no_pronoun():
    people, _, entries = _entries("multi2+permute+fullname", n=40)
    by_id = {p.id: p for p in people}
    for e in entries:
        assert all(by_id[e.person_id].name in s for s in _sentences(e))
        stripped = e.text
        for attr in ATTRIBUTES:  # values like "Hershey" are not pronouns; drop them first
            stripped = stripped.replace(by_id[e.person_id].value(attr), "")
        assert not PRONOUN_WORDS.search(stripped), e.text


def test_couple_keeps_pairs_together():
    _, _, entries = _entries("couple5", n=30)
    orders = set()
    for e in entries:
        pairs = [tuple(e.order[i:i + 2]) for i in (0, 2, 4)]
        assert sorted(pairs) == sorted(COUPLES)
        orders.add(e.order)
    assert len(orders) == 6  # all 3! pair orders occur


def test_pronouns_agree_with_gender():
    people = _people(200, pronouns="he-she")
    pools = load_pools()
    for p in people:
        assert p.gender == ("male" if p.first in pools.first_male else "female")
        assert p.pronoun == ("he" if p.gender == "male" else "she")
    assert {p.pronoun for p in _people(200, pronouns="he-she-they")} == {"he", "she", "they"}


def test_names_are_unique_and_company_city_is_derived():
    people = _people(3000)
    assert len({p.name for p in people}) == 3000
    pools = load_pools()
    hq = dict(zip(pools.companies, pools.company_hq))
    assert all(p.company_city == hq[p.company] for p in people)
    assert {p.birth_day for p in people} == set(range(1, 29))
    assert min(p.birth_year for p in people) >= 1900 and max(p.birth_year for p in people) <= 2099


def test_more_people_than_names_is_a_clear_error_not_a_hang():
    small = Pools(("Al",), ("Bea",), ("Cy", "Di"), ("Eve",), ("A, AA",), ("U",), ("M",), ("C",), ("A, AA",))
    sample_people(4, np.random.default_rng(0), pools=small)  # exactly the name space is fine
    with pytest.raises(KnowlabError, match="exceeds the 4 distinct full names"):
        sample_people(5, np.random.default_rng(0), pools=small)


@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 12),
       spec_text=st.sampled_from(FIGURE3_VARIANTS + ("couple2", "multi3+permute+french")))
@settings(max_examples=40, deadline=None)
def test_generator_properties(seed, n, spec_text):
    people = sample_people(n, np.random.default_rng(seed), "he-she-they")
    spec = parse_spec(spec_text)
    a = list(generate_entries(people, spec, np.random.default_rng(seed)))
    b = list(generate_entries(people, spec, np.random.default_rng(seed)))
    assert a == b  # deterministic for a seed
    lang = "fr" if spec.french else "en"
    for e in a:
        person = people[e.person_id]
        spans = sorted(e.spans.values())
        assert all(s1[1] < s2[0] for s1, s2 in zip(spans, spans[1:]))  # disjoint, in order
        for attr, (s, t) in e.spans.items():
            assert e.text[s:t] == person.value(attr, lang)
            assert e.text[t] in ".,  "


def test_fresh_entries_vary_per_exposure():
    person = _people(1)[0]
    spec = parse_spec("multi1+permute+fullname")
    rng, renderer = np.random.default_rng(0), Renderer()
    texts = {fresh_entry(person, spec, rng, renderer).text for _ in range(20)}
    assert len(texts) == 20
