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
    table: dict[str, dict[str, int]] = field(default_factory=dict)


def test_yaml_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("steps: 20\ninner:\n  lr: 0.5\n")
    cfg = load(Outer, path, {"inner.kind": "b", "flag": "true", "items": "x,y"})
    assert cfg == Outer(steps=20, flag=True, inner=Inner(lr=0.5, kind="b"), items=["x", "y"])
    assert to_dict(cfg)["inner"]["lr"] == 0.5
    assert replace(cfg, steps="30").steps == 30
    # a mapping field takes YAML from the command line, and dot-keys below it
    assert load(Outer, None, {"table": "{a: {b: 2}}"}).table == {"a": {"b": 2}}
    assert load(Outer, None, {"table.a.b": "3"}).table == {"a": {"b": 3}}


@pytest.mark.parametrize("over,needle", [
    ({"stepz": 1}, "unknown config key 'stepz'"),
    ({"inner.lrr": 1}, "unknown config key 'inner.lrr'"),
    ({"steps": "ten"}, "steps: expected an integer"),
    ({"steps": "1.5"}, "steps: expected an integer"),
    ({"inner.kind": "c"}, "inner.kind: 'c' is not valid; valid: a, b"),
    ({"flag": "maybe"}, "flag: expected true or false"),
    ({"table": "{a: 1"}, "table: expected a mapping such as"),
    ({"table": "[1, 2]"}, "table: expected a mapping"),
    ({"table": "{a: {b: x}}"}, "table.a.b: expected an integer"),
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


@pytest.mark.parametrize("text,value", [("9007199254740993", 9007199254740993), ("-3", -3), ("1_000", 1000),
                                        (" 42 ", 42), (2**63 + 1, 2**63 + 1)])
def test_integers_are_parsed_exactly(text, value):
    # 2**53 + 1 does not survive a trip through float: a seed must stay the seed that was written.
    assert from_dict(Outer, {}, {"steps": text}).steps == value


@pytest.mark.parametrize("bad", ["1e3", "1.0", "1000.0", 1e3, 2.0, "0x10", "1__0", True])
def test_integer_fields_refuse_what_was_not_written_as_an_integer(bad):
    with pytest.raises(KnowlabError, match="steps: expected an integer"):
        from_dict(Outer, {}, {"steps": bad})


def test_yaml_integers_and_every_preset_still_load(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("steps: 9007199254740993\n")
    assert load(Outer, path).steps == 9007199254740993
    from knowlab.data.config import DataConfig
    from knowlab.probe.types import ProbePreset
    from knowlab.study.config import StudyConfig
    from knowlab.train.config import PretrainConfig
    from knowlab.train.finetune import FinetuneConfig

    classes = {"data": DataConfig, "pretrain": PretrainConfig, "finetune": FinetuneConfig,
               "probe": ProbePreset, "study": StudyConfig}
    for stage, cls in classes.items():
        for preset in ("tiny", "gpu-quick", "paper"):
            load(cls, preset_path(stage, preset))
