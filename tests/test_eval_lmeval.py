"""The lm-evaluation-harness task export, and lm-eval's exact match agreeing with ours."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
import yaml

from knowlab.data.dataset import Dataset
from knowlab.eval.lmeval import TASK, export_lm_eval


def test_export_writes_task_and_p_test_questions(tiny_dataset, tmp_path):
    ds = Dataset(tiny_dataset)
    yaml_path, jsonl = export_lm_eval(tiny_dataset, tmp_path / "task")
    task = yaml.safe_load(yaml_path.read_text())
    assert task["task"] == TASK and task["output_type"] == "generate_until"
    assert task["dataset_kwargs"]["data_files"]["test"] == str(jsonl) and jsonl.is_absolute()
    assert task["generation_kwargs"]["until"] == ["\n", ".", ds.tokenizer.eos_token]
    assert task["metric_list"][0]["metric"] == "exact_match"
    rows = [json.loads(x) for x in jsonl.read_text().splitlines()]
    assert len(rows) == sum(s == "test" for s in ds.qa["split"].to_pylist())
    assert all(r["prompt"].endswith(" Answer:") and r["answer"] for r in rows)


def train_on_all_qas(ds: Dataset, steps: int, lr: float):
    """A 2 x 64 model trained on every QA (P_train and P_test) until some, not all, are right."""
    from knowlab.models.presets import ModelConfig, build_model
    from knowlab.train.finetune import answer_loss, collate, qa_examples

    tok = ds.tokenizer
    cfg = ModelConfig(size="custom", n_layer=2, n_head=2, n_embd=64, context=128)
    model = build_model(cfg, len(tok), tok.eos_token_id, tok.pad_token_id, seed=0)
    examples = qa_examples(ds, "train") + qa_examples(ds, "test")
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        idx = torch.randint(len(examples), (32,), generator=gen).tolist()
        answer_loss(model, collate([examples[i] for i in idx], tok.pad_token_id)).backward()
        opt.step()
        opt.zero_grad()
    return model.eval()


@pytest.mark.slow
def test_lm_eval_exact_match_equals_ours(tmp_path):
    pytest.importorskip("lm_eval")
    from conftest import make_dataset

    from knowlab.eval.qa import evaluate_qa

    torch.set_num_threads(1)
    ds = Dataset(make_dataset(tmp_path, "qa20", people=20))
    model = train_on_all_qas(ds, steps=150, lr=3e-3)
    metrics, _ = evaluate_qa(model, ds.tokenizer, ds, "test")
    ours = metrics["exact"]["mean"]
    assert 0.0 < ours < 1.0, "the comparison needs some right and some wrong answers"
    model.save_pretrained(tmp_path / "model")
    ds.tokenizer.save_pretrained(tmp_path / "model")
    export_lm_eval(ds.path, tmp_path / "task")

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "HF_DATASETS_CACHE": str(tmp_path / "hf_datasets"), "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-m", "lm_eval", "--model", "hf",
           "--model_args", f"pretrained={tmp_path / 'model'},dtype=float32", "--device", "cpu",
           "--include_path", str(tmp_path / "task"), "--tasks", TASK, "--batch_size", "16",
           "--output_path", str(tmp_path / "lm_out")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = next((tmp_path / "lm_out").rglob("results*.json"))
    theirs = json.loads(results.read_text())["results"][TASK]["exact_match,none"]
    print(f"lm-eval exact_match {theirs:.4f}, knowlab {ours:.4f}")
    assert abs(theirs - ours) <= 0.01, (theirs, ours)
