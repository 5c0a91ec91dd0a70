"""P-probing reads the token right before each value: checked for every template of every attribute."""

from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa
import pytest

from knowlab.data.bios import Renderer
from knowlab.data.dataset import Dataset
from knowlab.data.schema import ATTRIBUTES
from knowlab.data.tokenizer import encode_spans
from knowlab.probe.p_probe import p_examples, position_attributes, special_positions
from knowlab.probe.types import build_labels


def _check(tok, texts, spans, ids, tok_spans):
    """Every read position's token ends exactly where its value begins, and is not the value."""
    table = pa.table({f"{a}_tok_start": [s[i][0] for s in tok_spans] for i, a in enumerate(ATTRIBUTES)})
    pos = special_positions(table)  # (n, 6) indices into [EOS] + ids
    attrs = position_attributes(table)
    for r, text in enumerate(texts):
        seq = [tok.eos_token_id] + list(ids[r])
        # positions are in text order
        starts = [spans[r][a][0] for a in attrs[r]]
        assert starts == sorted(starts)
        for j in range(len(ATTRIBUTES)):
            a = attrs[r][j]
            start, _ = spans[r][a]
            p = pos[r, j]
            assert p == tok_spans[r][a][0], "the read position is the token before the value"
            if p == 0:  # a value that opens the text is read at the EOS before it
                assert start == 0 and seq[0] == tok.eos_token_id
                continue
            # The tokenizer adds a prefix space, so it saw " " + text; a value's first token
            # carries the space in front of it.
            seen, s = " " + text, start + 1
            cut = s - 1 if seen[s - 1] == " " else s
            before, first = tok.decode([seq[p]]), tok.decode([seq[p + 1]])
            assert seen[:cut].endswith(before), (text, ATTRIBUTES[a], before)
            assert seen[cut:].startswith(first) and len(first.strip()) > 0, (text, ATTRIBUTES[a], first)


def test_every_template_position(tiny_dataset):
    ds = Dataset(tiny_dataset)
    tok = ds.tokenizer
    renderer = Renderer("en")
    person = ds.person_objects()[0]
    texts, spans = [], []
    for pronoun in ("he", "she", "they"):
        who = dataclasses.replace(person, pronoun=pronoun)
        for a_i, attr in enumerate(ATTRIBUTES):
            for t in range(len(renderer.templates[attr])):
                templates = np.zeros(len(ATTRIBUTES), dtype=int)
                templates[a_i] = t
                rest = [i for i in range(len(ATTRIBUTES)) if i != a_i]
                # the template as the first sentence (full name) and as the last one (pronoun)
                for order in ([a_i, *rest], [*rest, a_i]):
                    for fullname in (False, True):
                        e = renderer.render(who, templates, order, fullname)
                        texts.append(e.text)
                        spans.append([e.spans[a] for a in ATTRIBUTES])
    ids, tok_spans = encode_spans(tok, texts, spans)
    _check(tok, texts, spans, ids, tok_spans)


def test_generated_permuted_bios(tmp_path):
    from conftest import make_dataset

    ds = Dataset(make_dataset(tmp_path, "perm", people=20, variant="multi2+permute"))
    bios = ds.bios
    texts = bios.column("text").to_pylist()
    spans = [[(r[f"{a}_start"], r[f"{a}_end"]) for a in ATTRIBUTES] for r in bios.to_pylist()]
    tok_spans = [[(r[f"{a}_tok_start"], r[f"{a}_tok_end"]) for a in ATTRIBUTES] for r in bios.to_pylist()]
    _check(ds.tokenizer, texts, spans, bios.column("input_ids").to_pylist(), tok_spans)
    # the examples the probe trains on carry those positions, after EOS, and the person's labels
    people = ds.people.column("id").to_numpy()
    labels = build_labels(ds, ["birth_month", "company_whole"])
    ex = p_examples(ds, people, labels)
    assert len(ex) == bios.num_rows and ex.pos.shape == (bios.num_rows, 6)
    assert all(s[0] == ds.tokenizer.eos_token_id for s in ex.ids)
    assert all(len(s) == len(r) + 1 for s, r in zip(ex.ids, bios.column("input_ids").to_pylist()))
    months = dict(zip(people, ds.people.column("birth_month").to_numpy()))
    order = np.argsort(list(months.values()))
    assert ex.y.shape == (bios.num_rows, 2)
    # dense month classes preserve the month order
    assert all(np.diff(labels.classes[order, 0]) >= 0)


def test_first_token_labels(tiny_dataset):
    ds = Dataset(tiny_dataset)
    labels = build_labels(ds, ["university_first", "university_whole"])
    tok = ds.tokenizer
    first = {}
    for pid, uni, cls in zip(labels.person_ids, ds.people.column("university").to_pylist(), labels.classes[:, 0]):
        token = tok(uni, add_special_tokens=False)["input_ids"][0]
        assert first.setdefault(cls, token) == token  # one class per first token
    assert len(set(first.values())) == labels.n_classes[0]
    unis = ds.people.column("university").to_pylist()
    assert labels.n_classes[1] == len(set(unis))
    with pytest.raises(KeyError):
        labels.of(np.array([10_000]))
