"""`knowlab train ...`: pretraining (and, registered by finetune_cli.py, finetuning).

    knowlab train pretrain --data DIR --out RUN [--preset tiny|gpu-quick|paper | --config FILE]
                           [--resume auto|never|PATH] [key=value ...]

Under torchrun the same command trains on every rank:
    torchrun --standalone --nproc_per_node 8 -m knowlab.cli train pretrain --data ... --out ...
"""

from __future__ import annotations

import argparse
from pathlib import Path

from knowlab.train.finetune_cli import register_finetune


def register(sub, export) -> None:
    train = sub.add_parser("train", help="pretrain and finetune models")
    actions = train.add_subparsers(dest="action", required=True, parser_class=type(train))
    _register_pretrain(actions)
    register_finetune(actions)  # `train finetune` lives in finetune_cli.py


def _register_pretrain(actions) -> None:
    p = actions.add_parser("pretrain", help="BIO pretraining or mixed training (qa_ratio > 0) on a dataset folder")
    p.add_argument("--data", required=True, help="dataset folder from 'knowlab data generate'")
    p.add_argument("--out", required=True, help="run folder (checkpoints, metrics.jsonl, model/)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--preset", help="a pretraining preset from configs/pretrain (tiny, gpu-quick, paper)")
    which.add_argument("--config", help="a YAML file of PretrainConfig keys")
    p.add_argument("--resume", default="auto", help="auto (default): continue from the newest checkpoint; never; or a checkpoint folder")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. steps=100 model.n_layer=2 optim.lr=3e-4")
    p.set_defaults(func=_pretrain)


def load_pretrain_config(preset: str | None = None, config: str | None = None, overrides: list[str] | None = None):
    """PretrainConfig from a preset name or YAML file plus `key=value` strings."""
    from knowlab.config import load, parse_overrides, preset_path
    from knowlab.train.config import PretrainConfig, budget_overrides

    path = config or (preset_path("pretrain", preset) if preset else None)
    return load(PretrainConfig, path, budget_overrides(parse_overrides(list(overrides or []))))


def _pretrain(args: argparse.Namespace) -> int:
    from knowlab.errors import KnowlabError

    cfg = load_pretrain_config(args.preset, args.config, args.overrides)
    if not Path(args.data).is_dir():
        raise KnowlabError(f"--data {args.data}: no such dataset folder")
    from knowlab.train.pretrain import pretrain

    hooks = []
    if cfg.eval_every or cfg.evals:
        # BIO and QA accuracy curves (Figure 1) on a fixed sample of P_train and P_test people.
        # GBERT (objective=mlm) gets the same metrics by mask filling: the hooks ask the model.
        from knowlab.eval.hooks import make_eval_hooks

        hooks = make_eval_hooks(args.data)
    out = pretrain(cfg, args.data, args.out, hooks=hooks, resume=args.resume,
                   show_progress=False if args.no_progress else None)
    import os

    if int(os.environ.get("RANK", "0")) == 0:
        print(f"wrote {out}/model (load with AutoModelForCausalLM.from_pretrained('{out}/model'))")
    return 0
