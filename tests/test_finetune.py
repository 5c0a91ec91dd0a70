"""QA finetuning: batches, config, the run folder, and reloading what it wrote."""

from __future__ import annotations

import json

import pytest
import torch

from knowlab.config import from_dict, load, preset_path
from knowlab.data.dataset import Dataset
from knowlab.errors import KnowlabError
from knowlab.models.presets import ModelConfig, build_model
from knowlab.train.finetune import FinetuneConfig, collate, finetune, qa_examples


@pytest.fixture(scope="module")
def base_model(tiny_dataset, tmp_path_factory):
    tok = Dataset(tiny_dataset).tokenizer
    cfg = ModelConfig(size="custom", n_layer=2, n_head=2, n_embd=64, context=128)
    folder = tmp_path_factory.mktemp("base") / "model"
    build_model(cfg, len(tok), tok.eos_token_id, tok.pad_token_id, seed=0).save_pretrained(folder)
    return folder


def test_labels_cover_answer_and_eos_only(tiny_dataset):
    ds = Dataset(tiny_dataset)
    tok = ds.tokenizer
    examples = qa_examples(ds)
    assert all(ids[-1] == tok.eos_token_id for ids, _ in examples)
    batch = collate(examples[:3], tok.pad_token_id)
    for row, (ids, start) in enumerate(examples[:3]):
        labels = batch["labels"][row].tolist()
        assert labels[:start] == [-100] * start
        assert labels[start:len(ids)] == ids[start:]  # value, period, EOS
        assert tok.decode(ids[start:-1]).startswith(" ") and tok.decode(ids[start:-1]).endswith(".")
        assert all(x == -100 for x in labels[len(ids):])
        assert batch["attention_mask"][row].sum() == len(ids)


def test_config_lr_by_method():
    assert from_dict(FinetuneConfig, {}).lr() == 3e-4
    assert from_dict(FinetuneConfig, {"method": "full"}).lr() == 1e-4
    assert from_dict(FinetuneConfig, {"method": "full", "optim": {"lr": 5e-4}}).lr() == 5e-4
    paper = load(FinetuneConfig, preset_path("finetune", "paper"))
    assert (paper.steps, paper.batch_size, paper.lora.r, paper.lora.embedding_r, paper.beams) == (50_000, 48, 8, 128, 4)
    assert (paper.optim.weight_decay, paper.optim.warmup_steps, paper.optim.min_lr_ratio, paper.optim.eps) == (0.01, 0, 0.1, 1e-6)
    for name in ("tiny", "gpu-quick"):
        assert load(FinetuneConfig, preset_path("finetune", name)).method == "lora"
    with pytest.raises(KnowlabError, match="method"):
        from_dict(FinetuneConfig, {"method": "qlora"})


def test_lora_run_folder_reloads_and_answers_the_same(tiny_dataset, base_model, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from knowlab.eval.evaluate import evaluate

    torch.set_num_threads(1)
    cfg = from_dict(FinetuneConfig, {"steps": 8, "batch_size": 8, "log_every": 4, "eval_every": 4, "eval_people": 2,
                                     "final_eval_people": 3, "lora_lr": 1e-2, "lora": {"r": 2, "embedding_r": 8}})
    out = tmp_path / "ft"
    summary = finetune(cfg, base_model.parent, tiny_dataset, out)  # a run folder: uses RUN/model
    assert {p.name for p in out.iterdir()} >= {"model", "adapter", "run.json", "metrics.jsonl", "eval_qa.json",
                                               "eval_qa.md", "eval_predictions.jsonl"}
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if "loss" in x] == [4, 8]
    evals = [x for x in lines if "qa_exact.test" in x]
    assert [x["step"] for x in evals] == [4, 8]
    assert set(evals[0]) >= {"bio_first_token.train", "bio_first_token.test", "qa_first_token.train", "qa_exact.train"}
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["method"] == "lora" and run["effective_lr"] == 1e-2 and run["seeds"] == {"seed": 0}
    assert summary["eval"]["splits"]["test"]["people"] == 3

    model = AutoModelForCausalLM.from_pretrained(out / "model", local_files_only=True)
    tok = AutoTokenizer.from_pretrained(out / "model", local_files_only=True)
    _, preds = evaluate(model, tok, tiny_dataset, splits=("train", "test"), max_people=3, seed=0, bio=False)
    saved = [json.loads(x) for x in (out / "eval_predictions.jsonl").read_text().splitlines()]
    assert preds == saved
    with pytest.raises(KnowlabError, match="already exists"):
        finetune(cfg, base_model, tiny_dataset, out)


def test_full_finetune_changes_weights_and_keeps_tying(tiny_dataset, base_model, tmp_path):
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(1)
    cfg = from_dict(FinetuneConfig, {"method": "full", "steps": 3, "batch_size": 4, "final_eval": False})
    finetune(cfg, base_model, tiny_dataset, tmp_path / "full")
    assert not (tmp_path / "full" / "adapter").exists() and not (tmp_path / "full" / "eval_qa.json").exists()
    before = AutoModelForCausalLM.from_pretrained(base_model)
    after = AutoModelForCausalLM.from_pretrained(tmp_path / "full" / "model")
    assert after.config.tie_word_embeddings
    mlp = "gpt_neox.layers.0.mlp.dense_h_to_4h.weight"
    assert not torch.equal(before.state_dict()[mlp], after.state_dict()[mlp])


def test_bad_inputs(tiny_dataset, tmp_path):
    cfg = from_dict(FinetuneConfig, {"steps": 1})
    with pytest.raises(KnowlabError, match="neither an HF model folder"):
        finetune(cfg, tmp_path / "nope", tiny_dataset, tmp_path / "out")
    with pytest.raises(KnowlabError, match="steps"):
        from_dict(FinetuneConfig, {"steps": 0})


def test_cli_registration(tiny_dataset, base_model, tmp_path, capsys):
    from knowlab.cli_parser import Parser
    from knowlab.train.finetune_cli import register_finetune

    parser = Parser(prog="knowlab train")
    register_finetune(parser.add_subparsers(dest="action", required=True, parser_class=Parser))
    out = tmp_path / "cli"
    args = parser.parse_args(["finetune", "--model", str(base_model), "--data", str(tiny_dataset), "--out", str(out),
                              "--preset", "tiny", "--steps", "2", "--batch-size", "4", "final_eval=false", "lora.r=2"])
    assert args.func(args) == 0
    assert "lora finetune, 2 steps, lr 0.001" in capsys.readouterr().out
    assert json.loads((out / "run.json").read_text())["config"]["lora"]["r"] == 2
    bad = parser.parse_args(["finetune", "--model", str(base_model), "--data", str(tiny_dataset), "--out",
                             str(tmp_path / "x"), "lora.rank=2"])
    with pytest.raises(KnowlabError, match="unknown config key 'lora.rank'"):
        bad.func(bad)
