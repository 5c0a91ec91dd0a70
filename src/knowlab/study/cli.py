"""`knowlab study run STUDY --preset P`, `knowlab study report DIR` and `knowlab study export DIR --out OUT`."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from knowlab.cli_parser import Parser
from knowlab.errors import KnowlabError


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise KnowlabError(f"--seeds must be comma-separated integers such as 0,1,2, got '{text}'") from None
    if not seeds:
        raise KnowlabError("--seeds needs at least one seed")
    return seeds


def _run(args: argparse.Namespace) -> int:
    from knowlab.study.session import run_study

    from knowlab.config import parse_overrides

    extra = parse_overrides(args.overrides)
    out = Path(args.out or f"studies/{args.study}-{args.preset}")
    command = "knowlab " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    return run_study(args.study, args.preset, out, _seeds(args.seeds), extra, dry_run=args.dry_run,
                     command=command, parallel=args.parallel)


def _report(args: argparse.Namespace) -> int:
    from knowlab.report.build import build_report

    path = build_report(args.dir)
    print(f"wrote {path} and {path.with_suffix('.html')}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from knowlab.study.export import export_study

    summary = export_study(args.dir, args.out)
    print(f"wrote {args.out}: {summary['files_kept']} files kept, {summary['files_cut']} cut "
          f"({summary['bytes_cut'] / 1e6:,.1f} MB of weights, checkpoints and datasets)")
    return 0


def register(sub, export) -> None:
    from knowlab.study.config import STUDIES

    study = sub.add_parser("study", help="run a whole study of the paper and write its report")
    actions = study.add_subparsers(dest="action", required=True, parser_class=Parser)
    run = actions.add_parser("run", help="plan, run (cached, resumable) and report a study")
    run.add_argument("study", choices=(*STUDIES, "all"))
    run.add_argument("--preset", default="tiny", help="tiny (CPU), gpu-quick (one GPU) or paper")
    run.add_argument("--out", help="study folder (default studies/STUDY-PRESET)")
    run.add_argument("--seeds", default="0", help="comma-separated seeds, e.g. 0,1,2")
    run.add_argument("--parallel", type=int, help="runs at once (default: the preset's)")
    run.add_argument("--dry-run", action="store_true", help="print the plan (runs, steps, tokens, time) only")
    run.add_argument("overrides", nargs="*", help="study keys or stage overrides: pretrain.steps=500, data.people=1000")
    run.set_defaults(func=_run)
    rep = actions.add_parser("report", help="rebuild report.md/html and results.csv from finished runs")
    rep.add_argument("dir")
    rep.set_defaults(func=_report)
    exp = actions.add_parser("export", help="copy a study folder without weights or datasets (for git); "
                                            "its report rebuilds and its sweep continues from the copy")
    exp.add_argument("dir")
    exp.add_argument("--out", required=True, help="new folder")
    exp.set_defaults(func=_export)
