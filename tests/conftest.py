"""Shared fixtures: tiny datasets generated in a temp folder once per test session."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pytest_collection_modifyitems(config, items):
    """Slow tests first. scripts/test.sh runs two workers, and the tiny augmentation study (two
    pretrainings, most of the suite's CPU time) then overlaps the hundreds of short tests instead of
    starting last on one worker while the other sits idle."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable: file order otherwise


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


def gpt2_format_tokenizer(folder, texts, vocab_size: int = 300):
    """A byte-level BPE saved the way GPT-2's tokenizer is on the Hub (vocab.json, merges.txt,
    tokenizer.json, GPT2Tokenizer class, no prefix space, EOS `<|endoftext|>`), trained on
    `texts`: a stand-in for GPT-2's own folder, which the tests cannot download."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import GPT2TokenizerFast

    eos = "<|endoftext|>"
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[eos], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    GPT2TokenizerFast(tokenizer_object=tok, bos_token=eos, eos_token=eos, unk_token=eos).save_pretrained(str(folder))
    tok.model.save(str(folder))  # vocab.json and merges.txt, as in GPT-2's folder
    return folder


@pytest.fixture(scope="session")
def spaced_dataset(tmp_path_factory):
    """10 people tokenized by a GPT-2-format BPE that never merges a space with the capital or
    digit after it: every QA answer's leading space is a token of its own."""
    root = tmp_path_factory.mktemp("spaced")
    tok = gpt2_format_tokenizer(root / "tok", ["abab abab"] * 10, vocab_size=262)
    return make_dataset(root, "ds", people=10, tokenizer=str(tok))


def kill_after_checkpoint(argv: list[str], run_dir, step: int = 5, timeout: float = 120) -> None:
    """Start a training CLI and SIGKILL it as soon as its step-`step` checkpoint is complete."""
    import signal
    import subprocess
    import time

    from knowlab.train import checkpoint as ckpt

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + timeout
        while not (run_dir / "checkpoints" / ckpt.step_name(step) / ckpt.MARKER).exists():
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.time() < deadline, "no checkpoint appeared"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
