"""The augmentation spec grammar: every paper variant parses, bad parts say what is valid."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from knowlab.data.spec import COUPLE_VARIANTS, FIGURE3_VARIANTS, parse_spec
from knowlab.errors import KnowlabError


@pytest.mark.parametrize("text", FIGURE3_VARIANTS + COUPLE_VARIANTS + ("multi5+french", "couple2+fullname"))
def test_paper_variants_parse_and_round_trip(text):
    spec = parse_spec(text)
    assert spec.name == text
    assert parse_spec(spec.name) == spec


def test_entries_per_person():
    assert parse_spec("single").entries == 1
    assert parse_spec("single+permute5").entries == 5
    assert parse_spec("multi2+permute+fullname").entries == 2
    assert parse_spec("couple5").entries == 5
    assert not parse_spec("single+permute5").resample_templates
    assert parse_spec("multi5").resample_templates


@pytest.mark.parametrize("bad,needle", [
    ("multi5+shuffle", "valid parts"),
    ("", "valid parts"),
    ("multi", "count"),
    ("single+permute", "permute1"),
    ("multi5+permute2", "plain 'permute'"),
    ("couple2+permute", "cannot be combined"),
    ("fullname", "no base"),
    ("single+multi2", "two bases"),
    ("multi2+fullname+fullname", "twice"),
])
def test_bad_specs_say_what_is_valid(bad, needle):
    with pytest.raises(KnowlabError, match=needle):
        parse_spec(bad)


parts = st.sampled_from(["single", "multi", "multi2", "couple3", "permute", "permute4", "fullname",
                         "french", "x", "multi0", "single2", "", "perm", "FULLNAME"])


@given(st.lists(parts, min_size=0, max_size=5))
@settings(max_examples=300, deadline=None)
def test_any_spec_either_parses_canonically_or_raises_a_clear_error(items):
    text = "+".join(items)
    try:
        spec = parse_spec(text)
    except KnowlabError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert parse_spec(spec.name) == spec
    assert spec.entries >= 1
