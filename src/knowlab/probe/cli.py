"""`knowlab probe p|q MODEL_DIR --data DIR`: P-probing and Q-probing of a pretrained model.

    knowlab probe p RUN --data DIR [--out DIR] [--preset tiny|paper | --config FILE] [key=value ...]
    knowlab probe q RUN --data DIR ...
    knowlab probe readout RUN --data DIR [--out DIR] [--l2 1e-3] [--threads 1]

MODEL_DIR is an HF model folder or a run folder holding one at model/. Writes p_probe.json and
p_probe.png (q_probe.* for q) into --out, by default the run folder (or the model folder).
Overrides address the probe's section: `steps=500` or `p.steps=500`, `optim.lr=3e-4`.
`readout` is the probe-free control (probe/readout.py): a logistic regression on frozen hidden
states at the name and at bio position 1, every layer; it writes readout.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def _intermixed(base: type) -> type:
    """A parser class that lets `key=value` overrides follow options after MODEL_DIR.

    Plain argparse fills every positional at the first one it meets, so in
    `probe p RUN --data D steps=5` the overrides would already be taken (empty) at RUN."""

    class Intermixed(base):
        def parse_known_args(self, args=None, namespace=None):
            if getattr(self, "_mixing", False):  # the inner passes of the intermixed parse
                return super().parse_known_args(args, namespace)
            self._mixing = True
            try:
                return self.parse_known_intermixed_args(args, namespace)
            finally:
                self._mixing = False

    return Intermixed


def register(sub, export) -> None:
    probe = sub.add_parser("probe", help="P- and Q-probing of a pretrained model (paper Section 5)")
    kinds = probe.add_subparsers(dest="action", required=True, parser_class=_intermixed(type(probe)))
    for kind, what in (("p", "position-based probing of bio entries (Figure 5)"),
                       ("q", "query-based probing of names (Figure 7)")):
        p = kinds.add_parser(kind, help=what)
        p.add_argument("model_dir", metavar="MODEL_DIR", help="HF model folder, or a run folder with model/")
        p.add_argument("--data", required=True, help="dataset folder the model was pretrained on")
        p.add_argument("--out", help="output folder (default: the run folder, else the model folder)")
        which = p.add_mutually_exclusive_group()
        which.add_argument("--preset", help="a probe preset from configs/probe (tiny, paper); default: paper values")
        which.add_argument("--config", help="a YAML file with p: and/or q: sections of probe keys")
        p.add_argument("--no-progress", action="store_true", help="no progress bar")
        p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. steps=500 share_embedding_update=true")
        p.set_defaults(func=_run, kind=kind)
    r = kinds.add_parser("readout", help="probe-free control: logistic regression on frozen hidden states")
    r.add_argument("model_dir", metavar="MODEL_DIR", help="HF model folder, or a run folder with model/")
    r.add_argument("--data", required=True, help="dataset folder the model was pretrained on")
    r.add_argument("--out", help="output folder (default: the run folder, else the model folder)")
    r.add_argument("--l2", type=float, default=1e-3, help="L2 penalty on the classifier's weights")
    r.add_argument("--threads", type=int, default=1, help="CPU threads for torch")
    r.add_argument("--train-people", type=int, default=0,
                   help="fit on this many P_train people (a seeded draw; 0 = all), to compare datasets of different sizes")
    r.set_defaults(func=_readout)


def _run(args: argparse.Namespace) -> int:
    from knowlab.config import parse_overrides
    from knowlab.errors import KnowlabError
    from knowlab.models.runtime import resolve_model_dir
    from knowlab.probe.run import default_out
    from knowlab.probe.types import load_probe_config

    cfg = load_probe_config(args.kind, args.preset, args.config, parse_overrides(list(args.overrides or [])))
    if not Path(args.data).is_dir():
        raise KnowlabError(f"--data {args.data}: no such dataset folder")
    resolve_model_dir(args.model_dir)  # fail on a bad model folder before loading anything
    if args.kind == "p":
        from knowlab.probe.p_probe import probe_model
    else:
        from knowlab.probe.q_probe import probe_model
    out = Path(args.out) if args.out else default_out(args.model_dir)
    result = probe_model(args.model_dir, args.data, cfg, out, show_progress=False if args.no_progress else None)
    print(_summary(result))
    print(f"wrote {out / f'{args.kind}_probe.json'} and {out / f'{args.kind}_probe.png'}")
    return 0


def _readout(args: argparse.Namespace) -> int:
    import torch

    from knowlab.errors import KnowlabError
    from knowlab.io import write_json_atomic
    from knowlab.models.runtime import resolve_model_dir
    from knowlab.probe.readout import linear_readout, summary
    from knowlab.probe.run import default_out

    if not Path(args.data).is_dir():
        raise KnowlabError(f"--data {args.data}: no such dataset folder")
    if args.threads < 1:
        raise KnowlabError(f"--threads must be at least 1, got {args.threads}")
    resolve_model_dir(args.model_dir)
    torch.set_num_threads(args.threads)
    result = linear_readout(args.model_dir, args.data, l2=args.l2, train_people=args.train_people)
    out = Path(args.out) if args.out else default_out(args.model_dir)
    write_json_atomic(out / "readout.json", result)
    print(summary(result))
    print(f"wrote {out / 'readout.json'}")
    return 0


def _summary(result: dict) -> str:
    """One line per task: held-out accuracy (per position for P) and the majority baseline."""
    lines = [f"{result['kind'].upper()}-probing {result['name']} ({result['counts']['test_people']} held-out people):"]
    for task in result["tasks"]:
        acc = result["accuracy"][task]
        shown = " ".join(f"{100 * a:5.1f}" for a in acc) if isinstance(acc, list) else f"{100 * acc:5.1f}"
        lines.append(f"  {result['task_labels'][task]:<15} {shown}   (baseline {100 * result['baseline'][task]:.1f})")
    return "\n".join(lines)
