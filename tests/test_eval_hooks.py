"""Evaluation hooks for training loops."""

from __future__ import annotations

import torch

from knowlab.data.dataset import Dataset
from knowlab.eval.hooks import make_eval_hooks, run_hooks
from knowlab.models.presets import ModelConfig, build_model


def test_hooks_measure_and_restore_train_mode(tiny_dataset):
    torch.set_num_threads(1)
    ds = Dataset(tiny_dataset)
    tok = ds.tokenizer
    cfg = ModelConfig(size="custom", n_layer=2, n_head=2, n_embd=64, context=256, dropout=0.1)
    model = build_model(cfg, len(tok), tok.eos_token_id, tok.pad_token_id, seed=0).train()
    hooks = make_eval_hooks(tiny_dataset, every=5, max_people=3)
    assert run_hooks(hooks, 3, model, tok) == {}  # not due
    metrics = run_hooks(hooks, 10, model, tok)
    assert set(metrics) == {f"{m}.{s}" for m in ("bio_first_token", "qa_first_token", "qa_exact") for s in ("train", "test")}
    assert all(0.0 <= v <= 1.0 for v in metrics.values())
    assert model.training and all(p.grad is None for p in model.parameters())
    # dropout is off while measuring: two calls agree
    assert run_hooks(hooks, 10, model, None) == metrics
    # the same sampled people each call, 3 per split
    assert all(len(p) == 3 for h in hooks for p in h.people.values())
