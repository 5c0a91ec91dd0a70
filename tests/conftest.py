"""Shared fixtures: tiny datasets generated in a temp folder once per test session."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def make_dataset(root, name: str = "ds", **overrides):
    from knowlab.config import from_dict
    from knowlab.data.config import DataConfig
    from knowlab.data.dataset import write_dataset

    cfg = from_dict(DataConfig, {"people": 40, "variant": "single", "seed": 0, "vocab_size": 600, **overrides})
    out = root / name
    write_dataset(cfg, out)
    return out


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """40 people, bioS single, P_train/P_test halves, a 600-token BPE."""
    return make_dataset(tmp_path_factory.mktemp("data"), "single")


@pytest.fixture(scope="session")
def tiny_multi_dataset(tmp_path_factory):
    """40 people, bioS multi5+permute+fullname."""
    return make_dataset(tmp_path_factory.mktemp("data"), "multi", variant="multi5+permute+fullname")


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors on a shared 2-core CPU: one torch thread is faster than two fighting."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
