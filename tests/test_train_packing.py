"""The pretraining stream: shuffled across people, EOS-separated, resumable, mixed by window."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pyarrow.compute as pc

from knowlab.data.dataset import Dataset
from knowlab.train.packing import (
    BIO_STREAM, FreshBios, PretrainStream, ShuffledDocs, TokenStream, bio_source, build_stream, qa_source,
)


def _bios(ds: Dataset, seed: int = 0) -> ShuffledDocs:
    return ShuffledDocs.from_arrow(ds.bios.column("input_ids"), ds.tokenizer.eos_token_id, seed, BIO_STREAM)


def _split_docs(tokens: np.ndarray, eos: int) -> list[tuple[int, ...]]:
    ends = np.flatnonzero(tokens == eos)
    starts = np.concatenate([[0], ends[:-1] + 1])
    return [tuple(tokens[s:e].tolist()) for s, e in zip(starts, ends)]


def test_every_bio_once_per_epoch_with_eos(tiny_dataset):
    ds = Dataset(tiny_dataset)
    eos = ds.tokenizer.eos_token_id
    src = _bios(ds)
    expected = Counter(tuple(ids) for ids in ds.bios.column("input_ids").to_pylist())
    for epoch in (0, 1):
        tokens = src.epoch_tokens(epoch)
        assert tokens.dtype == np.int32
        assert tokens[-1] == eos
        assert (tokens == eos).sum() == ds.bios.num_rows  # one EOS after every bio, none inside
        assert Counter(_split_docs(tokens, eos)) == expected


def test_reshuffled_every_epoch_and_seeded(tiny_dataset):
    ds = Dataset(tiny_dataset)
    a, b = _bios(ds, seed=0), _bios(ds, seed=0)
    assert not np.array_equal(a.order(0), a.order(1))
    assert np.array_equal(a.order(3), b.order(3))
    assert not np.array_equal(a.order(0), _bios(ds, seed=1).order(0))


def _dominated_share(src: ShuffledDocs, person_of_doc: np.ndarray, context: int) -> float:
    """Share of windows where one person owns more than half the tokens."""
    _, docs = src.epoch_tokens(0, with_docs=True)
    n = len(docs) // context
    owners = person_of_doc[docs[: n * context]].reshape(n, context)
    top = np.array([np.bincount(row).max() for row in owners])
    return float((top > context // 2).mean())


def test_windows_mix_people(tiny_multi_dataset):
    """multi5: a person's 5 entries are spread out, not packed together into one window."""
    ds = Dataset(tiny_multi_dataset)
    person = ds.bios.column("person_id").to_numpy()
    context = 512
    shuffled = _bios(ds)
    unshuffled = _bios(ds)
    unshuffled.order = lambda epoch: np.arange(unshuffled.n_docs)  # stored order: person by person
    assert _dominated_share(unshuffled, person, context) > 0.5  # the check catches a bad packer
    assert _dominated_share(shuffled, person, context) < 0.1


def test_windows_follow_the_stream_across_epochs_and_resume(tiny_dataset):
    ds = Dataset(tiny_dataset)
    c = 64
    stream = TokenStream(_bios(ds), c)
    flat = np.concatenate([stream.source.epoch_tokens(e) for e in range(3)])
    n_windows = len(flat) // c - 2  # crosses at least one epoch boundary
    first = stream.take(5)
    state = stream.state_dict()
    rest = stream.take(n_windows - 5)
    windows = np.concatenate([first, rest])
    assert windows.shape == (n_windows, c + 1)
    for i in (0, 1, n_windows // 2, n_windows - 1):
        np.testing.assert_array_equal(windows[i], flat[i * c : i * c + c + 1])
    resumed = TokenStream(_bios(ds), c)
    resumed.load_state_dict(state)
    np.testing.assert_array_equal(resumed.take(n_windows - 5), rest)


def test_mixed_windows_are_pure_and_p_train_only(tiny_dataset):
    ds = Dataset(tiny_dataset)
    c, batch, seed = 64, 16, 3
    mixed = build_stream(ds, c, seed, qa_ratio=0.5)
    ref_bios = TokenStream(bio_source(ds, seed), c)
    ref_qa = TokenStream(qa_source(ds, seed), c)
    qa_rows = []
    for step in range(20):
        windows, kinds = mixed.global_batch(step, batch)
        assert windows.shape == (batch, c + 1)
        # QA windows are exactly the next windows of the QA stream, bio windows of the bio stream
        np.testing.assert_array_equal(windows[kinds], ref_qa.take(int(kinds.sum())))
        np.testing.assert_array_equal(windows[~kinds], ref_bios.take(int((~kinds).sum())))
        qa_rows.extend(windows[kinds])
    assert qa_rows
    text = " ".join(ds.tokenizer.decode(row) for row in qa_rows)
    people = ds.people
    test_names = people.filter(pc.equal(people.column("split"), "test")).column("name").to_pylist()
    train_names = people.filter(pc.equal(people.column("split"), "train")).column("name").to_pylist()
    assert not [n for n in test_names if n in text]
    assert sum(n in text for n in train_names) >= len(train_names) // 2
    # the QA stream holds exactly the P_train QAs
    qa = ds.qa
    train_ids = Counter(tuple(x) for x in qa.filter(pc.equal(qa.column("split"), "train")).column("input_ids").to_pylist())
    assert Counter(_split_docs(qa_source(ds, seed).epoch_tokens(0), ds.tokenizer.eos_token_id)) == train_ids


def test_qa_ratio(tiny_dataset):
    ds = Dataset(tiny_dataset)
    stream = build_stream(ds, 32, 0, qa_ratio=0.8)
    kinds = np.concatenate([stream.is_qa(step, 96) for step in range(100)])
    assert abs(kinds.mean() - 0.8) < 0.02
    assert not build_stream(ds, 32, 0).is_qa(0, 96).any()
    assert isinstance(stream, PretrainStream)


def test_per_exposure_bios_are_fresh(tmp_path):
    from conftest import make_dataset

    ds = Dataset(make_dataset(tmp_path, "fresh", people=12, per_exposure=True))
    src = bio_source(ds, seed=0)
    assert isinstance(src, FreshBios)
    eos = ds.tokenizer.eos_token_id
    order0, texts0 = src.epoch_texts(0)
    order1, texts1 = src.epoch_texts(1)
    assert sorted(order0.tolist()) == list(range(12))  # each person once per epoch (single)
    by_person0 = dict(zip(order0.tolist(), texts0))
    by_person1 = dict(zip(order1.tolist(), texts1))
    assert sum(by_person0[p] != by_person1[p] for p in range(12)) >= 10  # re-rendered
    people = ds.person_objects()
    for p in range(12):
        assert people[p].university in by_person0[p]
    tokens = src.epoch_tokens(0)
    assert (tokens == eos).sum() == 12 and tokens[-1] == eos
    assert np.array_equal(tokens, src.epoch_tokens(0))  # a pure function of (seed, epoch)
