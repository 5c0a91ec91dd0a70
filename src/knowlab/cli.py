"""The `knowlab` command line.

Every subcommand takes `--config FILE` (YAML) and trailing `key=value` overrides with dot-keys,
and prints bad input as one line (`knowlab: error: ...`) with exit status 2, never a traceback.
Handlers import their stage lazily so `knowlab --help` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from knowlab.augment import cli as augment_cli
from knowlab.cli_parser import Parser
from knowlab.errors import KnowlabError
from knowlab.eval import cli as eval_cli
from knowlab.probe import cli as probe_cli
from knowlab.study import cli as study_cli
from knowlab.train import cli as train_cli

Handler = Callable[[argparse.Namespace], int | None]


def _overrides(args: argparse.Namespace) -> dict[str, str]:
    from knowlab.config import parse_overrides

    return parse_overrides(list(getattr(args, "overrides", []) or []))


# ---- data ------------------------------------------------------------------------------------

def _data_generate(args: argparse.Namespace) -> int:
    from knowlab.config import load, preset_path
    from knowlab.data.config import DataConfig
    from knowlab.data.dataset import write_dataset

    path = args.config or (preset_path("data", args.preset) if args.preset else None)
    flags = {k: v for k, v in {
        "people": args.people, "variant": args.variant, "seed": args.seed,
        "train_fraction": args.train_fraction, "celebrities": args.celebrities,
        "celebrity_variant": args.celebrity_variant, "tokenizer": args.tokenizer,
        "vocab_size": args.vocab_size, "pronouns": args.pronouns,
        "per_exposure": args.per_exposure or None,
    }.items() if v is not None}
    cfg = load(DataConfig, path, {**flags, **_overrides(args)})
    if args.family == "bioR":
        from knowlab.augment.cli import run_bior

        return run_bior(args, cfg)
    if args.rewriter:
        raise KnowlabError("--rewriter writes bioR bios; add --family bioR")
    manifest = write_dataset(cfg, args.out, overwrite=args.overwrite, show_progress=True)
    c = manifest["counts"]
    print(f"wrote {args.out}: {c['people']:,} people ({c['p_train']:,} P_train, {c['p_test']:,} P_test), "
          f"{c['bios']:,} bios, {c['qa']:,} QAs, vocabulary {c['vocab_size']:,}")
    return 0


def _data_show(args: argparse.Namespace) -> int:
    from knowlab.data.show import show

    print(show(args.dir, examples=args.examples))
    return 0


def _data_tasks(args: argparse.Namespace) -> int:
    # Part 3.2 manipulation tasks (knowlab.data.tasks).
    from knowlab.config import load
    from knowlab.data.tasks import TaskConfig, write_tasks

    flags = {k: v for k, v in {"tasks": args.tasks, "train_people": args.train_people, "pairs": args.pairs,
                               "hints": args.hints, "seed": args.seed}.items() if v is not None}
    cfg = load(TaskConfig, None, {**flags, **_overrides(args)})
    manifest = write_tasks(args.data, args.out, cfg, overwrite=args.overwrite)
    c = manifest["counts"]
    print(f"wrote {args.out}: {c['qa']:,} task rows ({c['qa_train']:,} train, {c['qa_test']:,} test) "
          f"of {len(manifest['tasks']['names'])} tasks")
    return 0


def _data_holdout(args: argparse.Namespace) -> int:
    from knowlab.data.holdout import write_holdout

    m = write_holdout(args.data, args.out, fraction=args.fraction, seed=args.seed, overwrite=args.overwrite)
    print(f"wrote {args.out}: {m['counts']['p_train']:,} training and {m['counts']['p_test']:,} validation "
          f"people, all from P_train of {args.data} (its P_test is left out)")
    return 0


def _export_jsonl(args: argparse.Namespace) -> int:
    from knowlab.data.export import export_jsonl

    for path in export_jsonl(args.data, args.out):
        print(f"wrote {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="knowlab", description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    data = sub.add_parser("data", help="generate and inspect datasets").add_subparsers(dest="action", required=True, parser_class=Parser)
    gen = data.add_parser("generate", help="generate a bioS or bioR dataset folder (Parquet + tokenizer + card)")
    gen.add_argument("--family", choices=["bioS", "bioR"], default="bioS",
                     help="bioS: template bios (default); bioR: bios written by a language model (needs --rewriter)")
    gen.add_argument("--out", required=True, help="output folder (must not exist unless --overwrite)")
    gen.add_argument("--preset", help="a data preset from configs/data (tiny, gpu-quick, paper)")
    gen.add_argument("--config", help="a YAML file of DataConfig keys")
    gen.add_argument("--people", type=int, help="number of people N (default 100000)")
    gen.add_argument("--variant", help="augmentation spec, e.g. single or multi5+permute+fullname")
    gen.add_argument("--seed", type=int)
    gen.add_argument("--train-fraction", type=float, help="p: fraction of people in P_train (default 0.5)")
    gen.add_argument("--celebrities", type=int, help="size of an extra celebrity group (Result 6)")
    gen.add_argument("--celebrity-variant", help="augmentation spec of the celebrities")
    gen.add_argument("--pronouns", help="he-she (default) or he-she-they")
    gen.add_argument("--per-exposure", action="store_true", help="pretraining draws a fresh bio per exposure (bioS(N))")
    gen.add_argument("--tokenizer", help="use this local HF tokenizer folder instead of training BPE")
    gen.add_argument("--vocab-size", type=int)
    gen.add_argument("--overwrite", action="store_true")
    gen.add_argument("overrides", nargs="*", help="key=value overrides of DataConfig")
    augment_cli.add_bior_arguments(gen)
    gen.set_defaults(func=_data_generate)

    show = data.add_parser("show", help="counts and a few rendered examples of a dataset folder")
    show.add_argument("dir")
    show.add_argument("--examples", type=int, default=3)
    show.set_defaults(func=_data_show)

    tasks = data.add_parser("tasks", help="Part 3.2 manipulation tasks (retrieval, classification, comparison, "
                            "inverse search) of a dataset folder, as a task folder finetuning reads")
    tasks.add_argument("data", metavar="DATA", help="a dataset folder from 'knowlab data generate'")
    tasks.add_argument("--out", required=True, help="output task folder (must not exist unless --overwrite)")
    tasks.add_argument("--tasks", help="comma-separated families and/or task names (default: every family)")
    tasks.add_argument("--train-people", type=int,
                       help="classification/comparison training population, from P_train (default 0: all)")
    tasks.add_argument("--pairs", type=int, help="comparison partners per person (default 2)")
    tasks.add_argument("--hints", help="mixed (default: half the training rows carry the hint) or none")
    tasks.add_argument("--seed", type=int, help="luckiness table, training population, pairs, hint choice")
    tasks.add_argument("--overwrite", action="store_true")
    tasks.add_argument("overrides", nargs="*", help="key=value overrides of TaskConfig")
    tasks.set_defaults(func=_data_tasks)

    hold = data.add_parser("holdout", help="a validation copy of a dataset: P_test removed, part of P_train "
                           "relabelled as test, so settings are chosen without the evaluation people")
    hold.add_argument("data", metavar="DATA", help="a dataset folder from 'knowlab data generate'")
    hold.add_argument("--out", required=True, help="output folder (must not exist unless --overwrite)")
    hold.add_argument("--fraction", type=float, default=0.5, help="share of P_train used for validation (default 0.5)")
    hold.add_argument("--seed", type=int, default=0, help="which P_train people are held out")
    hold.add_argument("--overwrite", action="store_true")
    hold.set_defaults(func=_data_holdout)

    export = sub.add_parser("export", help="export datasets and tasks for outside tools").add_subparsers(dest="action", required=True, parser_class=Parser)
    jl = export.add_parser("jsonl", help="write bios/qa/people as JSONL next to the Parquet files")
    jl.add_argument("--data", required=True)
    jl.add_argument("--out", required=True)
    jl.set_defaults(func=_export_jsonl)

    # Each stage adds its own subcommands; stage CLIs are argparse only, so --help stays fast.
    for stage in (train_cli, eval_cli, probe_cli, study_cli, augment_cli):
        stage.register(sub, export)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    # key=value overrides may follow positionals and options in any order; argparse alone only
    # takes a trailing positional list if it comes before the options.
    args, extra = parser.parse_known_args(argv)
    stray = [a for a in extra if a.startswith("-") or "=" not in a or not hasattr(args, "overrides")]
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    if extra:
        args.overrides = list(args.overrides or []) + extra
    try:
        return int(args.func(args) or 0)
    except KnowlabError as exc:
        print(f"knowlab: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("knowlab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
