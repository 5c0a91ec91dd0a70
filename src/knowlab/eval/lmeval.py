"""Export the P_test QA evaluation as an lm-evaluation-harness task folder.

    knowlab export lm-eval --data DIR --out TASKDIR
    lm_eval --model hf --model_args pretrained=RUN/model --include_path TASKDIR --tasks knowlab_qa_test

The task reproduces knowlab's greedy exact match (`knowlab.eval.scoring`): the context is the
prompt `{question} Answer:`, generation stops at "\n", "." or EOS (lm-eval cuts the text at the
first stop string, and adds the tokenizer's EOS itself), and exact_match compares the value with
the continuation after stripping surrounding whitespace (`regexes_to_ignore`), case- and
punctuation-sensitive. The task YAML names the JSONL by absolute path: move the folder, export again.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.compute as pc
import yaml

from knowlab.data.dataset import Dataset
from knowlab.eval.qa import max_answer_tokens
from knowlab.io import atomic_dir

TASK = "knowlab_qa_test"


def task_config(jsonl: Path, max_gen_toks: int, eos: str) -> dict:
    return {
        "task": TASK,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(jsonl)}},
        "test_split": "test",
        "output_type": "generate_until",
        "doc_to_text": "{{prompt}}",
        "doc_to_target": "{{answer}}",
        "generation_kwargs": {"until": ["\n", ".", eos], "do_sample": False, "max_gen_toks": max_gen_toks},
        "num_fewshot": 0,
        "metric_list": [{
            "metric": "exact_match", "aggregation": "mean", "higher_is_better": True,
            "ignore_case": False, "ignore_punctuation": False, "regexes_to_ignore": [r"^\s+", r"\s+$"],
        }],
        "metadata": {"version": 1.0, "source": "knowlab: Physics of Language Models Part 3.1, P_test QAs"},
    }


def export_lm_eval(data: str | Path, out: str | Path) -> list[Path]:
    """Write TASKDIR/{knowlab_qa_test.yaml, knowlab_qa_test.jsonl}; returns the two paths."""
    ds = Dataset(data)
    out = Path(out).resolve()
    table = ds.qa.filter(pc.equal(ds.qa["split"], "test"))
    cols = table.select(["person_id", "attribute", "question", "prompt", "answer"]).to_pydict()
    eos = ds.tokenizer.eos_token or "<|endoftext|>"
    with atomic_dir(out, overwrite=True) as tmp:
        with open(tmp / f"{TASK}.jsonl", "w", encoding="utf-8") as fh:
            for row in zip(*cols.values()):
                fh.write(json.dumps(dict(zip(cols, row)), ensure_ascii=False) + "\n")
        config = task_config(out / f"{TASK}.jsonl", max_answer_tokens(ds) + 2, eos)
        (tmp / f"{TASK}.yaml").write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    return [out / f"{TASK}.yaml", out / f"{TASK}.jsonl"]
