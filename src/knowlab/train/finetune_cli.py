"""`knowlab train finetune`: QA finetuning from the command line.

Wired into `knowlab train` by `knowlab.train.cli` calling `register_finetune(train_subparsers)`.
"""

from __future__ import annotations

import argparse


def _finetune(args: argparse.Namespace) -> int:
    from knowlab.config import load, parse_overrides, preset_path
    from knowlab.eval.report import result_tables
    from knowlab.train.finetune import FinetuneConfig, finetune

    path = args.config or (preset_path("finetune", args.preset) if args.preset else None)
    flags = {k: v for k, v in {"method": args.method, "steps": args.steps, "batch_size": args.batch_size,
                               "optim.lr": args.lr, "seed": args.seed}.items() if v is not None}
    cfg = load(FinetuneConfig, path, {**flags, **parse_overrides(list(args.overrides or []))})
    summary = finetune(cfg, args.model, args.data, args.out, overwrite=args.overwrite, show_progress=True,
                       resume=args.resume)
    print(f"wrote {args.out}: {cfg.method} finetune, {cfg.steps:,} steps, lr {cfg.lr():g}, "
          f"final loss {summary['final_loss']:.4f}, {summary['train_seconds']:.0f} s")
    if "eval" in summary:
        print()
        print(result_tables(summary["eval"], name=str(args.out).rstrip("/").rsplit("/", 1)[-1]))
    return 0


def register_finetune(train_subparsers) -> None:
    """Add `finetune` to the `knowlab train` subcommands."""
    ft = train_subparsers.add_parser(
        "finetune", help="QA finetuning (LoRA or full) of a pretrained model on the P_train QAs")
    ft.add_argument("--model", required=True, help="an HF model folder, or a pretraining run folder (uses RUN/model)")
    ft.add_argument("--data", required=True, help="the dataset folder the model was pretrained on")
    ft.add_argument("--out", required=True, help="output run folder (must not exist unless --overwrite)")
    ft.add_argument("--preset", help="a finetune preset from configs/finetune (tiny, gpu-quick, paper)")
    ft.add_argument("--config", help="a YAML file of FinetuneConfig keys")
    ft.add_argument("--method", choices=("lora", "full"))
    ft.add_argument("--steps", type=int)
    ft.add_argument("--batch-size", type=int)
    ft.add_argument("--lr", type=float, help="overrides the preset's lora_lr/full_lr")
    ft.add_argument("--seed", type=int)
    ft.add_argument("--overwrite", action="store_true")
    ft.add_argument("--resume", default="auto", help="auto (default): continue a killed run from its newest "
                    "checkpoint (in .OUT.partial/); never; or a checkpoint folder")
    ft.add_argument("overrides", nargs="*", help="key=value overrides of FinetuneConfig, e.g. lora.r=16")
    ft.set_defaults(func=_finetune)
