"""`knowlab eval qa` and `knowlab export lm-eval` from the command line."""

from __future__ import annotations

import json

import pytest
import torch

from knowlab.cli import main
from knowlab.data.dataset import Dataset
from knowlab.models.presets import ModelConfig, build_model


@pytest.fixture(scope="module")
def model_dir(tiny_dataset, tmp_path_factory):
    tok = Dataset(tiny_dataset).tokenizer
    cfg = ModelConfig(size="custom", n_layer=2, n_head=2, n_embd=64, context=256)
    run = tmp_path_factory.mktemp("run")
    build_model(cfg, len(tok), tok.eos_token_id, tok.pad_token_id, seed=0).save_pretrained(run / "model")
    tok.save_pretrained(run / "model")
    return run / "model"


def test_eval_qa_writes_json_and_table(tiny_dataset, model_dir, capsys):
    torch.set_num_threads(1)
    assert main(["eval", "qa", str(model_dir.parent), "--data", str(tiny_dataset), "--split", "both",
                 "--max-people", "2", "--batch-size", "8"]) == 0
    out = capsys.readouterr().out
    assert "| model | mean | b_date | b_city | univ | major | c_name | c_city |" in out
    result = json.loads((model_dir.parent / "eval_qa.json").read_text())
    assert set(result["splits"]) == {"train", "test"}
    for split in result["splits"].values():
        assert split["questions"] == 12 and set(split) >= {"exact", "first_token", "bio_first_token"}


@pytest.mark.parametrize("argv, message", [
    (["eval", "qa", "/no/such/model", "--data", "/no/such/data"], "neither an HF model folder"),
    (["eval", "qa", "MODEL", "--data", "/no/such/data"], "not a knowlab dataset folder"),
    (["eval", "qa", "MODEL", "--data", "DATA", "--beams", "0"], "--beams must be at least 1"),
    (["eval", "qa", "MODEL", "--data", "DATA", "--device", "tpu9"], "unknown device"),
    (["eval", "qa", "MODEL", "--data", "DATA", "--split", "dev"], "invalid choice"),
    (["export", "lm-eval", "--data", "/no/such/data", "--out", "OUT"], "not a knowlab dataset folder"),
])
def test_bad_input_is_one_line_exit_2(tiny_dataset, model_dir, tmp_path, capsys, argv, message):
    subs = {"MODEL": str(model_dir), "DATA": str(tiny_dataset), "OUT": str(tmp_path / "task")}
    argv = [subs.get(a, a) for a in argv]
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse errors exit from inside parse_args
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and message in err and "Traceback" not in err
