"""`knowlab augment` and the bioR options of `knowlab data generate`.

    knowlab augment INPUT.jsonl --out OUT.jsonl --style shuffle|paraphrase|translate \\
        [--rewriter SPEC] [--copies M] [--max-attempts K] [--case-insensitive] ...
    knowlab data generate --family bioR --rewriter SPEC --out DIR [--variant multi5+fullname] ...

Nothing heavy is imported here: `knowlab --help` stays fast.
"""

from __future__ import annotations

import argparse
import sys

from knowlab.errors import KnowlabError


def _add_sampling(p: argparse.ArgumentParser, max_new_tokens: int, max_attempts: int) -> None:
    p.add_argument("--temperature", type=float, default=0.8, help="sampling temperature; 0 is greedy (default 0.8)")
    p.add_argument("--top-p", type=float, default=0.95, help="nucleus sampling mass (default 0.95)")
    p.add_argument("--max-new-tokens", type=int, default=max_new_tokens,
                   help=f"length cap of each rewrite (default {max_new_tokens})")
    p.add_argument("--max-attempts", type=int, default=max_attempts,
                   help=f"samples per copy before it is reported as failed (default {max_attempts})")


def register(sub, export) -> None:
    what = "rewrite your own documents M times, keeping listed facts verbatim"
    p = sub.add_parser("augment", help=what, description=f"Knowledge augmentation: {what}; a failing copy is "
                       "retried, then reported in OUT.failed.jsonl. See docs/augment.md.")
    p.add_argument("input", help="JSONL: one {\"id\", \"text\", \"facts\": [...]} per line (optional name, pronoun)")
    p.add_argument("--out", required=True, help="output JSONL; rows are appended as they pass, a rerun resumes")
    p.add_argument("--rewriter", default=None,
                   help="hf:/path/to/model, openai:http://host:port/v1#model=NAME, or shuffle (default for --style shuffle)")
    p.add_argument("--style", choices=["shuffle", "paraphrase", "translate"], default="paraphrase")
    p.add_argument("--copies", type=int, default=1, help="rewrites per document (default 1)")
    p.add_argument("--language", default="French", help="target language of --style translate")
    p.add_argument("--case-insensitive", action="store_true", help="facts match ignoring case")
    p.add_argument("--whole-words", action="store_true", help="a fact must not sit inside a longer word")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache", help="SQLite file of generations (default OUT.cache.sqlite)")
    p.add_argument("--stop", action="append", default=[], help="cut each rewrite at this string (repeatable)")
    _add_sampling(p, 512, 4)
    p.set_defaults(func=_augment)


def _augment(args: argparse.Namespace) -> int:
    from knowlab.augment.augment import AugmentConfig, augment_file
    from knowlab.augment.rewriter import SamplingParams

    spec = args.rewriter or ("shuffle" if args.style == "shuffle" else None)
    if spec is None:
        raise KnowlabError(f"--style {args.style} needs a model: pass --rewriter hf:DIR or --rewriter openai:URL#model=NAME")
    sampling = SamplingParams(temperature=args.temperature, top_p=args.top_p, max_new_tokens=args.max_new_tokens,
                              seed=args.seed, stop=list(args.stop))
    cfg = AugmentConfig(style=args.style, copies=args.copies, max_attempts=args.max_attempts,
                        case_insensitive=args.case_insensitive, whole_words=args.whole_words,
                        language=args.language, seed=args.seed, sampling=sampling)
    summary = augment_file(args.input, args.out, spec, cfg, cache=args.cache, show_progress=True)
    print(summary.line())
    return 1 if summary.failed else 0


# ---- bioR, for `knowlab data generate --family bioR` -----------------------------------------------

def add_bior_arguments(gen: argparse.ArgumentParser) -> None:
    """The bioR flags of `knowlab data generate` (used only with --family bioR)."""
    g = gen.add_argument_group("bioR (with --family bioR)")
    g.add_argument("--rewriter", help="the model writing the bios: hf:DIR or openai:URL#model=NAME")
    g.add_argument("--bior-mode", choices=["llama1", "llama2"], default="llama1",
                   help="prompt style of App. A.2: llama1 (default) or llama2 ('be creative ... permute sentences')")
    g.add_argument("--words", type=int, default=50, help="length asked for in the prompt (default 50)")
    g.add_argument("--words-max", type=int, default=0, help="draw the asked length from [--words, --words-max]")
    g.add_argument("--date-variants", action="store_true", help="accept '2 October 1996', 'October 2nd, 1996', ...")
    g.add_argument("--aliases", help="JSON/YAML file: value -> accepted aliases (e.g. MIT)")
    g.add_argument("--on-failure", choices=["error", "drop"], default="error",
                   help="a person whose bio never passes: stop with an error (default) or leave them out")
    g.add_argument("--work-dir", help="generation cache and progress (default OUT.work)")
    _add_sampling(g, 320, 8)

def run_bior(args: argparse.Namespace, cfg) -> int:
    """`knowlab data generate --family bioR`: `cfg` is the DataConfig the command resolved."""
    from knowlab.augment.bior import BiorConfig, generate_bior

    if not args.rewriter:
        raise KnowlabError("--family bioR needs --rewriter (hf:DIR or openai:URL#model=NAME)")
    opts = BiorConfig(mode=args.bior_mode, words=args.words, words_max=args.words_max,
                      max_attempts=args.max_attempts, date_variants=args.date_variants, aliases=args.aliases,
                      on_failure=args.on_failure, work_dir=args.work_dir, temperature=args.temperature,
                      top_p=args.top_p, max_new_tokens=args.max_new_tokens)
    manifest = generate_bior(cfg, args.rewriter, args.out, options=opts, overwrite=args.overwrite,
                             show_progress=True, log=lambda msg: print(f"knowlab: {msg}", file=sys.stderr))
    c, b = manifest["counts"], manifest["bior"]
    print(f"wrote {args.out}: bioR {manifest['config']['variant']}, {c['people']:,} people "
          f"({c['p_train']:,} P_train, {c['p_test']:,} P_test), {c['bios']:,} bios, {c['qa']:,} QAs, "
          f"vocabulary {c['vocab_size']:,}; {b['generated']:,} generated, {b['cache_hits']:,} from cache")
    return 0
