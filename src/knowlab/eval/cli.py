"""`knowlab eval qa` and `knowlab export lm-eval`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from knowlab.cli_parser import Parser
from knowlab.errors import KnowlabError


def _eval_qa(args: argparse.Namespace) -> int:
    from knowlab.data.dataset import Dataset
    from knowlab.eval.evaluate import evaluate
    from knowlab.models.runtime import load_model, resolve_model_dir
    from knowlab.eval.report import result_tables
    from knowlab.io import write_json_atomic

    if args.beams < 1:
        raise KnowlabError(f"--beams must be at least 1, got {args.beams}")
    if args.batch_size < 0 or (args.max_people is not None and args.max_people < 1):
        raise KnowlabError("--batch-size must be 0 (auto) or more and --max-people at least 1")
    folder = resolve_model_dir(args.model_dir)
    ds = Dataset(args.data)
    tok = ds.tokenizer
    model = load_model(folder, device=args.device, tokenizer=tok)
    splits = ("train", "test") if args.split == "both" else (args.split,)
    # A GBERT folder answers by mask filling (--beams unused); evaluate picks that from the model.
    result, preds = evaluate(model, tok, ds, splits=splits, beams=args.beams, batch_size=args.batch_size,
                             max_people=args.max_people, bio=not args.no_bio, seed=args.seed, show_progress=True)
    result["model"] = str(folder)
    out = Path(args.out) if args.out else folder.parent / "eval_qa.json"
    write_json_atomic(out, result)
    if args.predictions:
        from knowlab.io import write_text_atomic

        write_text_atomic(args.predictions, "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in preds))
    print(result_tables(result, name=folder.parent.name if folder.name == "model" else folder.name))
    print(f"\nwrote {out}")
    return 0


def _eval_tasks(args: argparse.Namespace) -> int:
    # Part 3.2 manipulation tasks: answer-only and hint modes (knowlab.eval.tasks).
    from knowlab.data.dataset import Dataset
    from knowlab.eval.tasks import evaluate_tasks, result_table, write_eval
    from knowlab.models.runtime import check_tokenizer, load_model, resolve_model_dir

    if args.batch_size < 0 or args.max_rows < 0:
        raise KnowlabError("--batch-size and --max-rows must be 0 (auto / all) or more")
    folder = resolve_model_dir(args.model_dir)
    ds = Dataset(args.data)
    tok = ds.tokenizer
    check_tokenizer(folder, tok)
    model = load_model(folder, device=args.device)
    splits = ("train", "test") if args.split == "both" else (args.split,)
    result, preds = evaluate_tasks(model, tok, ds, splits=splits, modes=args.modes.split(","),
                                   batch_size=args.batch_size, max_rows=args.max_rows, seed=args.seed,
                                   beams=args.beams, show_progress=True)
    result["model"] = str(folder)
    write_eval(args.out, result, preds)
    for split in splits:
        print(f"{split}:\n{result_table(result, split)}\n")
    print(f"wrote {args.out}/eval_tasks.json")
    return 0


def _export_lm_eval(args: argparse.Namespace) -> int:
    from knowlab.eval.lmeval import export_lm_eval

    for path in export_lm_eval(args.data, args.out):
        print(f"wrote {path}")
    return 0


def register(sub, export) -> None:

    ev = sub.add_parser("eval", help="evaluate models: QA exact match, first token, BIO memorisation")
    actions = ev.add_subparsers(dest="action", required=True, parser_class=Parser)
    qa = actions.add_parser("qa", help="QA accuracy by generation (Figure 3's table) on P_test and/or P_train")
    qa.add_argument("model_dir", metavar="MODEL_DIR", help="an HF model folder or a run folder with model/")
    qa.add_argument("--data", required=True, help="the dataset folder the model was trained on")
    qa.add_argument("--split", choices=("test", "train", "both"), default="test")
    qa.add_argument("--beams", type=int, default=1, help="1: greedy (fast path); the paper uses 4")
    qa.add_argument("--batch-size", type=int, default=0, help="prompts per batch; 0: 1024 on GPU, 256 on CPU")
    qa.add_argument("--max-people", type=int, help="evaluate a fixed random sample of this many people per split")
    qa.add_argument("--seed", type=int, default=0, help="seed of the --max-people sample")
    qa.add_argument("--no-bio", action="store_true", help="skip BIO memorisation")
    qa.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    qa.add_argument("--out", help="JSON of all numbers (default MODEL_DIR/../eval_qa.json)")
    qa.add_argument("--predictions", help="also write one JSON line per question with the model's answer")
    qa.set_defaults(func=_eval_qa)

    tk = actions.add_parser("tasks", help="Part 3.2 manipulation tasks: answer and hint accuracy per task")
    tk.add_argument("model_dir", metavar="MODEL_DIR", help="an HF model folder or a run folder with model/")
    tk.add_argument("--data", required=True, help="a task folder from 'knowlab data tasks'")
    tk.add_argument("--out", required=True, help="output folder: eval_tasks.json, eval_tasks.md, predictions.jsonl")
    tk.add_argument("--split", choices=("test", "train", "both"), default="test")
    tk.add_argument("--modes", default="answer,hint", help="answer (marker 'Answer:'), hint (marker 'Hint:') or both")
    tk.add_argument("--batch-size", type=int, default=0, help="prompts per batch; 0: 1024 on GPU, 256 on CPU")
    tk.add_argument("--beams", type=int, default=1, help="1: greedy (fast path); the paper uses 4")
    tk.add_argument("--max-rows", type=int, default=0, help="score a fixed random sample of this many rows per task")
    tk.add_argument("--seed", type=int, default=0, help="seed of the --max-rows sample")
    tk.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    tk.set_defaults(func=_eval_tasks)

    lm = export.add_parser("lm-eval", help="write an lm-evaluation-harness task folder for the P_test QAs")
    lm.add_argument("--data", required=True)
    lm.add_argument("--out", required=True, help="task folder (pass it to lm_eval --include_path)")
    lm.set_defaults(func=_export_lm_eval)
