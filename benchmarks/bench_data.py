"""Data generation speed: N people as multi5+permute+fullname, generated, tokenized and written.

Acceptance target: 100,000 people (500,000 bios, 600,000 QAs, a 4,096-token BPE trained on the
corpus, token ids and token spans, Parquet) in at most 30 s wall, peak memory reported.

    python benchmarks/bench_data.py                      # in-process (phases) and the CLI (end to end)
    python benchmarks/bench_data.py --mode cli --repeat 3
    python benchmarks/bench_data.py --check              # correctness checks only (small N, ~1 min)

In-process mode calls `write_dataset(..., timings=...)`, which reports its phases on the main
thread's clock: render (people, bios and QA as segment arrays), columns (texts and the other non-token columns,
while the BPE trains in a second thread), tokenizer (what is left of the training, and saving),
tokenize (token ids of the distinct segments, checked against whole-text tokenization on a
sample), write (gathering each row group's token ids, and writing bios.parquet and qa.parquet
side by side), hash (sha256 of every file for the manifest). tokenizer_train is the BPE training
itself and tokenize_rows the token gathering (summed over both writer threads), both overlapping
the phases above. CPU is user + system seconds
of the whole process (all threads); on a machine shared with other jobs wall time depends on the
load, so the load average is printed before and after.

The CLI mode times `knowlab data generate` as a subprocess: interpreter start, imports, everything.
Both modes run in a fresh interpreter; CPU seconds and peak RSS (ru_maxrss) are that process's
own, from wait4.

--check: (1) the same config and seed give byte-identical files (every file, tokenizer included);
(2) the columnar renderer gives exactly `Renderer.render`'s entries; (3) per-segment token ids and
spans equal whole-text `encode_spans`, on every row, for several variants.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VARIANT = "multi5+permute+fullname"


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs ({model}), {platform.machine()}, Python {platform.python_version()}"


def load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def spawn(cmd: list[str]) -> dict:
    """Run `cmd`; its wall time, and CPU seconds and peak RSS of it alone (wait4), not of
    earlier children or of this process."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{stderr}")
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "peak_mb": usage.ru_maxrss / 1024,  # KiB on Linux
            "stdout": stdout, "stderr": stderr.strip()}


def inprocess_child(people: int, variant: str, out: str, seed: int) -> None:
    """In a fresh interpreter: write_dataset with its phase timings, printed as JSON."""
    from knowlab.config import from_dict
    from knowlab.data.config import DataConfig
    from knowlab.data.dataset import write_dataset

    cfg = from_dict(DataConfig, {"people": people, "variant": variant, "seed": seed})
    timings: dict = {}
    t0 = time.perf_counter()
    manifest = write_dataset(cfg, out, timings=timings)
    wall = time.perf_counter() - t0
    size = sum(p.stat().st_size for p in Path(out).rglob("*") if p.is_file())
    print(json.dumps({"wall_write_dataset": wall, "phases": timings, "counts": manifest["counts"], "size_mb": size / 2**20}))


def run_inprocess(people: int, variant: str, root: Path, seed: int) -> dict:
    out = root / "inprocess"
    r = spawn([sys.executable, __file__, "--_child", str(out), "--people", str(people), "--variant", variant,
               "--seed", str(seed)])
    shutil.rmtree(out)
    r.update(json.loads(r.pop("stdout").strip().splitlines()[-1]))
    return r


def run_cli(people: int, variant: str, root: Path, seed: int) -> dict:
    out = root / "cli"
    cmd = [sys.executable, "-m", "knowlab.cli", "data", "generate", "--people", str(people),
           "--variant", variant, "--seed", str(seed), "--out", str(out)]
    r = spawn(cmd)
    shutil.rmtree(out)
    r["cmd"] = " ".join(["knowlab", *cmd[3:-1], "DIR"])
    return r


def check(n: int = 300) -> None:
    """Determinism, columnar == per-entry rendering, per-segment == whole-text tokenization."""
    import numpy as np

    from knowlab.config import from_dict
    from knowlab.data import dataset as D
    from knowlab.data.bios import Renderer, _orders, generate_entries
    from knowlab.data.config import DataConfig
    from knowlab.data.people import sample_people
    from knowlab.data.spec import parse_spec
    from knowlab.data.tables import RowTokens
    from knowlab.data.tokenizer import segment_words

    root = Path(tempfile.mkdtemp(prefix="bench_data_check_"))
    try:
        # 1. byte-identical folders for the same config and seed
        cfg = {"people": n, "variant": VARIANT, "seed": 3, "vocab_size": 1000, "pronouns": "he-she-they"}
        digests = []
        for name in ("a", "b"):
            D.write_dataset(from_dict(DataConfig, cfg), root / name)
            digests.append({str(p.relative_to(root / name)): hashlib.sha256(p.read_bytes()).hexdigest()
                            for p in sorted((root / name).rglob("*")) if p.is_file()})
        assert digests[0] == digests[1], "two runs with the same config differ"
        print(f"ok  byte-identical: {len(digests[0])} files ({', '.join(sorted(digests[0]))})")

        variants = ("single", "single+permute5+fullname", "multi5+permute+fullname", "couple5",
                    "multi2+french", "multi3+permute+fullname+french")
        # 2. the columnar renderer against Renderer.render, entry by entry
        for variant in variants:
            spec = parse_spec(variant)
            people = sample_people(n, np.random.default_rng(1), "he-she-they")
            renderer = Renderer("fr" if spec.french else "en")
            fast = list(generate_entries(people, spec, np.random.default_rng(2), renderer))
            rng = np.random.default_rng(2)  # the same draws, rendered one entry at a time
            m = spec.entries
            templates = rng.integers(0, renderer.counts, size=(len(people), m if spec.resample_templates else 1, 6))
            orders = _orders(spec, len(people) * m, rng).reshape(len(people), m, 6)
            slow = [renderer.render(p, templates[i, j if spec.resample_templates else 0], orders[i, j], spec.fullname, j)
                    for i, p in enumerate(people) for j in range(m)]
            assert fast == slow, f"{variant}: columnar entries differ from Renderer.render"
        print(f"ok  columnar rendering == Renderer.render for {', '.join(variants)}")

        # 3. per-segment token ids == whole-text tokenization, every row
        for variant in variants + ("single",):
            extra = {"celebrities": 40, "celebrity_variant": "multi2+permute+french"} if variant == "single" else {}
            c = from_dict(DataConfig, {"people": n, "variant": variant, "seed": 5, "vocab_size": 700,
                                       "pronouns": "he-she-they", **extra})
            cols = D.generate_columns(c)
            tok = D.train_tokenizer(D.tokenizer_corpus(c, cols), c.vocab_size)
            tokens = RowTokens(tok, cols, segment_words(cols.segs))
            assert tokens.seg_tokens is not None, f"{variant}: per-segment tokenization was not used"
            texts = cols.segs.texts(cols.bios.seg)
            for a, b in zip(tokens.bios(cols.bios, texts, fast=False), tokens.bios(cols.bios, texts)):
                assert np.array_equal(np.asarray(a), np.asarray(b)), f"{variant}: bios token ids differ"
            texts = cols.segs.texts(cols.qa_seg)
            for a, b in zip(tokens.qa(cols.qa_seg, cols.qa_value_pos, texts, fast=False),
                            tokens.qa(cols.qa_seg, cols.qa_value_pos, texts)):
                assert np.array_equal(np.asarray(a), np.asarray(b)), f"{variant}: QA token ids differ"
        print("ok  per-segment token ids and spans == encode_spans on whole texts (all rows, "
              f"{len(variants) + 1} configs incl. celebrities)")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--people", type=int, default=100_000)
    ap.add_argument("--variant", default=VARIANT)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--mode", choices=("inprocess", "cli", "both"), default="both")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--check", action="store_true", help="run the correctness checks instead")
    ap.add_argument("--_child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    if args._child:
        inprocess_child(args.people, args.variant, args._child, args.seed)
        return 0
    if args.check:
        check()
        return 0

    print(f"machine: {machine()}")
    root = Path(tempfile.mkdtemp(prefix="bench_data_"))
    results = []
    try:
        for rep in range(args.repeat):
            for mode in (("cli", "inprocess") if args.mode == "both" else (args.mode,)):
                before = load()
                r = (run_cli if mode == "cli" else run_inprocess)(args.people, args.variant, root, args.seed)
                r.update(mode=mode, rep=rep, load_before=before, load_after=load())
                results.append(r)
                line = (f"[{mode} #{rep + 1}] wall {r['wall']:.1f} s, CPU {r['cpu']:.1f} s, peak RSS {r['peak_mb']:.0f} MB, "
                        f"load {before} -> {r['load_after']}")
                if r["stderr"]:
                    line += f"\n    stderr: {r['stderr']!r}"
                if mode == "inprocess":
                    line += f"\n    write_dataset: {r['wall_write_dataset']:.1f} s (the rest is interpreter start and imports)"
                    p = r["phases"]
                    line += ("\n    main thread: " + ", ".join(f"{k} {p[k]:.2f}" for k in
                             ("render", "columns", "tokenizer", "tokenize", "write", "hash") if k in p)
                             + "\n    overlapping: " + ", ".join(f"{k} {p[k]:.2f}" for k in
                             ("tokenizer_train", "tokenize_rows") if k in p)
                             + f"\n    rows: {r['counts']['bios']:,} bios, {r['counts']['qa']:,} QAs; files {r['size_mb']:.0f} MB")
                print(line, flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    print("\n| mode | people | variant | wall s | CPU s | render | columns + BPE training | tokenizer wait | tokenize | gather + write | hash | peak RSS MB | load before -> after |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        p = r.get("phases", {})
        cell = lambda k: f"{p[k]:.1f}" if k in p else ""  # noqa: E731
        print(f"| {r['mode']} | {args.people:,} | {args.variant} | {r['wall']:.1f} | {r['cpu']:.1f} | {cell('render')} | "
              f"{cell('columns')} (train {cell('tokenizer_train')}) | {cell('tokenizer')} | {cell('tokenize')} | "
              f"{cell('write')} | {cell('hash')} | {r['peak_mb']:.0f} | {r['load_before']} -> {r['load_after']} |"
              if p else
              f"| {r['mode']} | {args.people:,} | {args.variant} | {r['wall']:.1f} | {r['cpu']:.1f} | | | | | | | "
              f"{r['peak_mb']:.0f} | {r['load_before']} -> {r['load_after']} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine(), "results": results}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
