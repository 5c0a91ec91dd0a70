"""Probes find what is linearly there and nothing that is not (fast, tiny, CPU)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from knowlab.config import from_dict
from knowlab.data.dataset import Dataset
from knowlab.errors import KnowlabError
from knowlab.probe.types import PProbeConfig, QProbeConfig, build_labels
from knowlab.probe.engine import Probe
from knowlab.probe.p_probe import run_p_probe
from knowlab.probe.q_probe import run_q_probe


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def people(tmp_path_factory):
    """1,000 people (500 train / 500 test): every birth month occurs among the training people,
    and a probe cannot simply memorise them all in a few steps."""
    from conftest import make_dataset

    return Dataset(make_dataset(tmp_path_factory.mktemp("probe"), "p1000", people=1000))


class NameStub(nn.Module):
    """Hidden state at every position = a fixed random code of the person's birth month + noise.

    The person is found from the name tokens in the input (token ids are recovered from
    `inputs_embeds` as the nearest embedding row), so whatever the probe does to the input,
    the attribute is in the last hidden state linearly, and nowhere else."""

    def __init__(self, ds: Dataset, d: int = 32, noise: float = 0.5):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        tok = ds.tokenizer
        self.emb = nn.Embedding(len(tok), d)
        nn.init.normal_(self.emb.weight, generator=g)
        self.codes = torch.randn(12, d, generator=g)
        self.noise = noise
        names = tok(ds.people.column("name").to_pylist(), add_special_tokens=False)["input_ids"]
        months = ds.people.column("birth_month").to_numpy() - 1
        self.month_of = {tuple(n): int(m) for n, m in zip(names, months)}
        self.lengths = sorted({len(n) for n in names})

    def get_input_embeddings(self):
        return self.emb

    def _month(self, ids: list[int]) -> int:
        for i in range(len(ids)):
            for n in self.lengths:
                m = self.month_of.get(tuple(ids[i: i + n]))
                if m is not None:
                    return m
        raise AssertionError("no known name in the input")

    def forward(self, inputs_embeds, attention_mask=None, output_hidden_states=True, use_cache=False):
        ids = torch.cdist(inputs_embeds, self.emb.weight.detach().unsqueeze(0)).argmin(-1)  # (B, S)
        months = torch.tensor([self._month(row.tolist()) for row in ids])
        code = self.codes[months][:, None, :].expand_as(inputs_embeds)
        h = code + self.noise * torch.randn_like(code) + 1e-3 * inputs_embeds  # keeps the graph
        return SimpleNamespace(hidden_states=(inputs_embeds, h))


@pytest.mark.parametrize("rank", [16, 0])  # rank 0: norm and classifier only (results/name-tokens)
def test_q_probe_finds_linear_attribute(people, rank):
    cfg = from_dict(QProbeConfig, {"steps": 150, "batch_size": 50, "tasks": ["birth_month", "university_first"],
                                   "layer": "all", "device": "cpu", "max_test_people": 200, "rank": rank})
    r = run_q_probe(NameStub(people), people, cfg)
    assert r["config"]["rank"] == rank
    assert r["accuracy"]["birth_month"] >= 0.95
    assert r["baseline"]["birth_month"] < 0.2
    assert set(r["accuracy_by_layer"]) == {"0", "1"} and r["layer"] == 1
    assert r["counts"] == {"train_people": 500, "test_people": 200, "train_examples": 500, "test_examples": 200}


def test_p_probe_finds_linear_attribute(people):
    cfg = from_dict(PProbeConfig, {"steps": 100, "tasks": ["birth_month"], "share_embedding_update": True,
                                   "device": "cpu", "max_test_people": 100, "max_train_eval": 50})
    r = run_p_probe(NameStub(people), people, cfg)
    assert len(r["accuracy"]["birth_month"]) == 6
    assert min(r["accuracy"]["birth_month"]) >= 0.95, r["accuracy"]


def test_random_model_stays_near_baseline(people):
    """A random model's states hold no attribute of an unseen person, so a held-out probe lands
    between the two uninformed guessers: always the commonest class (the baseline) and a guess
    drawn from the training prior (where a short-trained classifier on noise sits). P is checked
    at the first position: later positions follow earlier values, which even a random model
    passes on (company city follows from the company name)."""
    from knowlab.models.presets import ModelConfig, build_model

    tok = people.tokenizer
    model = build_model(from_dict(ModelConfig, {"size": "custom", "n_layer": 1, "n_head": 2, "n_embd": 32,
                                                "dropout": 0.1}), len(tok), tok.eos_token_id, seed=0)
    tasks = ["birth_month", "university_first", "company_city_first", "major_first"]
    shared = {"tasks": tasks, "device": "cpu", "share_embedding_update": True}
    q = run_q_probe(model, people, from_dict(QProbeConfig, {"steps": 100, **shared}))
    p = run_p_probe(model, people, from_dict(PProbeConfig, {"steps": 30, **shared}))
    labels = build_labels(people, tasks)
    split = np.asarray(people.people.column("split").to_pylist())
    for i, t in enumerate(tasks):
        train_p = np.bincount(labels.classes[split == "train", i], minlength=labels.n_classes[i]) / (split == "train").sum()
        test_p = np.bincount(labels.classes[split == "test", i], minlength=labels.n_classes[i]) / (split == "test").sum()
        prior_guess = float(train_p @ test_p)
        base = q["baseline"][t]
        for kind, acc in (("p", p["accuracy"][t][0]), ("q", q["accuracy"][t])):
            assert prior_guess - 0.05 <= acc <= base + 0.05, (kind, t, acc, prior_guess, base)


def test_per_task_embedding_updates_are_independent(people):
    """Each task's rank-r update gets gradient from its own heads only; shared gets all."""
    labels = build_labels(people, ["birth_month", "major_first"])
    emb = torch.randn(len(people.tokenizer), 16)
    for shared in (False, True):
        cfg = from_dict(PProbeConfig, {"share_embedding_update": shared})
        probe = Probe(emb, labels.n_classes, 1, 6, cfg)
        for p in (probe.U, probe.V, *probe.W):
            p.data.normal_()
        ids = torch.randint(0, len(emb), (3, 7))
        x = probe.embed(ids)  # (G*3, 7, 16)
        assert x.shape == ((1 if shared else 2) * 3, 7, 16)
        h = x.view(-1, 3, 7, 16)[:, :, :6].permute(1, 0, 2, 3).unsqueeze(1)  # (B, L, G, P, d)
        h = h.expand(-1, -1, 2, -1, -1)
        logits = probe.heads(h)
        assert [lg.shape for lg in logits] == [(3, 1, 6, m) for m in labels.n_classes]
        logits[0].sum().backward()  # task 0 only
        grad = probe.U.grad.abs().sum(dim=(1, 2))
        assert grad[0] > 0
        if not shared:
            assert grad[1] == 0


def test_zero_update_starts_at_pretrained(people):
    emb = torch.randn(50, 8)
    probe = Probe(emb, [3], 1, 1, from_dict(QProbeConfig, {}))
    ids = torch.randint(0, 50, (2, 5))
    assert probe.U.shape == (1, 50, 16)  # one task: one rank-16 update
    assert torch.equal(probe.embed(ids), emb[ids])


def test_layer_out_of_range(people):
    from knowlab.errors import KnowlabError

    with pytest.raises(KnowlabError, match="layer 5 is out of range"):
        run_q_probe(NameStub(people), people, from_dict(QProbeConfig, {"steps": 1, "layer": 5,
                                                                            "tasks": ["birth_month"]}))


def test_probe_time_dropout_rate_is_applied_to_the_frozen_model_and_restored():
    """Every knowlab preset pretrains with dropout 0, where `dropout: true` alone changes nothing;
    `dropout_rate` gives the frozen model a rate while the probe trains."""
    from knowlab.models.presets import ModelConfig, build_model
    from knowlab.probe.engine import dropout_at

    model = build_model(from_dict(ModelConfig, {"size": "custom", "n_layer": 1, "n_head": 2, "n_embd": 32}),
                        50, 0, seed=0)
    ids = torch.arange(1, 9)[None]
    model.train()

    def twice_equal():
        return torch.equal(model(ids).logits, model(ids).logits)

    assert twice_equal()  # dropout 0: "dropout on" is the same forward
    with dropout_at(model, 0.5):
        assert not twice_equal()
    assert twice_equal()  # restored
    with pytest.raises(KnowlabError, match="dropout_rate must be within"):
        from_dict(QProbeConfig, {"dropout_rate": 1.0})
