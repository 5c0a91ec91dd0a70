"""Pools and templates: sizes, uniqueness, and every template rendering for every pronoun."""

import re
import string

import pytest

from knowlab.data.pools import load_pools
from knowlab.data.templates import (
    PERSON_FIELDS,
    load_templates,
    name_fields,
    pronoun_fields,
    template_counts,
)


def test_pool_sizes_match_the_paper():
    p = load_pools()
    assert (len(p.first_male), len(p.first_female), len(p.middle), len(p.last)) == (200, 200, 400, 1000)
    assert (len(p.cities), len(p.universities), len(p.majors), len(p.companies)) == (200, 300, 100, 263)
    assert p.name_space == 400 * 400 * 1000


def test_pools_are_unique_clean_and_gendered():
    p = load_pools()
    for pool in (p.first_male, p.first_female, p.middle, p.last, p.cities, p.universities, p.majors, p.companies):
        assert len(set(pool)) == len(pool)
        assert all(v == v.strip() and v and not v.endswith(".") and "{" not in v for v in pool)
    assert not set(p.first_male) & set(p.first_female), "gender must follow from the first name"
    city = re.compile(r"^[A-Z][A-Za-z' -]*[a-z], [A-Z]{2}$")
    assert all(city.match(c) for c in p.cities + p.company_hq)


def test_company_city_is_the_headquarters_and_new_york_share_is_realistic():
    p = load_pools()
    share = p.company_hq.count("New York, NY") / len(p.companies)
    assert abs(share - 0.137) < 0.01


# The paper's first-token baselines (Figure 7's baseline row, % of people): always guessing the
# most common first token of a value. knowlab's BPE makes each word one token, so the first word
# stands for the first token; the most common first word's share must match.
FIRST_TOKEN_BASELINES = {  # pool: (most common first word, its share in %)
    "cities": ("San", 2.5),
    "universities": ("University", 37.0),
    "majors": ("Computer", 4.0),
    "companies": ("United", 1.5),
    "company_hq": ("New", 14.8),
}


@pytest.mark.parametrize("pool", sorted(FIRST_TOKEN_BASELINES))
def test_most_common_first_word_gives_the_papers_first_token_baseline(pool):
    from collections import Counter

    values = getattr(load_pools(), pool)
    word, share = FIRST_TOKEN_BASELINES[pool]
    counts = Counter(v.replace(",", " ").split()[0] for v in values).most_common()
    assert counts[0][0] == word
    assert abs(100 * counts[0][1] / len(values) - share) < 0.05
    assert counts[1][1] < counts[0][1]  # a single most common word, so the baseline is that share


def test_university_share_is_the_papers_37_percent():
    # "the university first token is often 'University'": 111 of 300, the Q-probe baseline 37.0%.
    assert sum(u.startswith("University ") for u in load_pools().universities) == 111


def test_template_counts_match_the_paper():
    assert template_counts("en") == {
        "birth_date": 46, "birth_city": 49, "university": 49,
        "major": 52, "company": 47, "company_city": 48,
    }
    assert all(n >= 15 for n in template_counts("fr").values())


@pytest.mark.parametrize("language", ["en", "fr"])
def test_every_template_renders_for_every_pronoun_and_a_name(language):
    for attr, templates in load_templates(language).items():
        assert len({t.text for t in templates}) == len(templates), f"duplicate {attr} template"
        for t in templates:
            fields = [f for _, f, _, _ in string.Formatter().parse(t.text) if f]
            assert fields.count("value") == 1
            assert sum(f in PERSON_FIELDS for f in fields) == 1, t.text
            for pronoun, gender in (("he", "male"), ("she", "female"), ("they", "male")):
                text = t.text.format(value="X", **pronoun_fields(pronoun, gender, language))
                assert "{" not in text and "}" not in text
                assert text[0].isupper() and text.endswith(".")
            named = t.text.format(value="X", **name_fields("Anya Briar Forger", "female", language))
            assert "Anya Briar Forger" in named


def test_english_agreement_reads_right_for_they():
    they = pronoun_fields("they", "female")
    rendered = [t.text.format(value="X", **they) for ts in load_templates("en").values() for t in ts]
    for sentence in rendered:
        assert not re.search(r"\b[Tt]hey (was|is|has|does)\b", sentence), sentence


@pytest.mark.parametrize("language", ["en", "fr"])
def test_the_person_comes_before_the_value(language):
    # In a bio's first sentence the name must precede the value, or the value cannot be
    # predicted from the name (it would not be memorisable knowledge about the person).
    for attr, templates in load_templates(language).items():
        for t in templates:
            assert any(f"{{{f}}}" in t.before for f in PERSON_FIELDS), f"{attr}: {t.text}"
