"""Typed configs: YAML + dot-key overrides, coercion, and one-line errors."""

from dataclasses import dataclass, field
from typing import Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from knowlab.config import from_dict, load, parse_overrides, preset_path, replace, to_dict
from knowlab.errors import KnowlabError


@dataclass
class Inner:
    lr: float = 1e-3
    kind: Literal["a", "b"] = "a"


@dataclass
class Outer:
    steps: int = 10
    name: str | None = None
    flag: bool = False
    inner: Inner = field(default_factory=Inner)
    items: list[str] = field(default_factory=list)


def test_yaml_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("steps: 20\ninner:\n  lr: 0.5\n")
    cfg = load(Outer, path, {"inner.kind": "b", "flag": "true", "items": "x,y"})
    assert cfg == Outer(steps=20, flag=True, inner=Inner(lr=0.5, kind="b"), items=["x", "y"])
    assert to_dict(cfg)["inner"]["lr"] == 0.5
    assert replace(cfg, steps="30").steps == 30


@pytest.mark.parametrize("over,needle", [
    ({"stepz": 1}, "unknown config key 'stepz'"),
    ({"inner.lrr": 1}, "unknown config key 'inner.lrr'"),
    ({"steps": "ten"}, "steps: expected an integer"),
    ({"steps": "1.5"}, "steps: expected an integer"),
    ({"inner.kind": "c"}, "inner.kind: 'c' is not valid; valid: a, b"),
    ({"flag": "maybe"}, "flag: expected true or false"),
])
def test_bad_values_name_the_key(over, needle):
    with pytest.raises(KnowlabError, match=needle):
        from_dict(Outer, {}, over)


def test_override_syntax_and_presets(tmp_path):
    assert parse_overrides(["a.b=1", "--c=x=y"]) == {"a.b": "1", "c": "x=y"}
    with pytest.raises(KnowlabError, match="key=value"):
        parse_overrides(["novalue"])
    with pytest.raises(KnowlabError, match="valid: "):
        preset_path("study", "nope")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1\n")
    with pytest.raises(KnowlabError, match="not valid YAML"):
        load(Outer, bad)


@given(st.integers(-10**6, 10**6))
def test_integers_round_trip_through_strings(n):
    assert from_dict(Outer, {}, {"steps": str(n)}).steps == n
