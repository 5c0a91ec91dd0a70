"""Rewrite throughput: rows per second through each backend of `knowlab augment`.

End to end through `augment_file` (prompt building, generation, fact check, streamed JSONL
output), on the same input rows, with a fresh cache per run (so every row is generated):
- `shuffle`: no model;
- `hf`: a local HF model folder, batched (left padding, per-row seeded sampling);
- `http`: the OpenAI-compatible HTTP client against knowlab's loopback server wrapping the same
  model object (requests from `--concurrency` threads are gathered into batches);
- `transformers-serve` (with --transformers-serve): the client against `transformers serve`
  on the same model folder, started here on 127.0.0.1 (one request at a time on its side).

The model is built here from a config (nothing is downloaded): a GPT-2 of --layers x --width
with a BPE of --vocab trained on the input texts, random weights, so it rarely stops early:
every generation runs to --max-new-tokens, the slowest case. --model DIR uses your own folder.

    python benchmarks/bench_rewrite.py [--rows 64] [--max-new-tokens 48] [--threads 1] [--repeats 3] [--transformers-serve]

The backends take turns, --repeats times, so background load hits them alike; the report gives
the median rows/s of each and every run's figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def make_rows(n: int) -> list[dict]:
    from knowlab.config import from_dict
    from knowlab.data.config import DataConfig
    from knowlab.data.dataset import generate

    gen = generate(from_dict(DataConfig, {"people": n, "variant": "single", "seed": 0}))
    by_id = {p.id: p for p in gen.people}
    return [{"id": e.person_id, "text": e.text, "name": by_id[e.person_id].name, "pronoun": by_id[e.person_id].pronoun,
             "facts": [by_id[e.person_id].value(a) for a in ("birth_date", "university", "company")]}
            for e in gen.entries]


def run(label: str, rewriter, rows_path: Path, root: Path, cfg, rows: int) -> dict:
    from knowlab.augment.augment import augment_file

    out = root / f"{label}-{time.monotonic_ns()}.jsonl"
    t0 = time.perf_counter()
    summary = augment_file(rows_path, out, rewriter, cfg, cache=root / f"{out.name}.sqlite")
    seconds = time.perf_counter() - t0
    done = summary.written + summary.failed
    assert done == rows, (done, rows)
    return {"backend": label, "rows": rows, "seconds": round(seconds, 2), "rows_per_s": round(rows / seconds, 2),
            "passed_fact_check": summary.written}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=64, help="rows through the model backends")
    ap.add_argument("--shuffle-rows", type=int, default=2000, help="rows through shuffle (fast: more rows time it better)")
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--batch-size", type=int, default=8, help="hf batch size, and the server's batch")
    ap.add_argument("--concurrency", type=int, default=8, help="parallel HTTP requests")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--vocab", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--model", help="a local HF model folder instead of the generated one")
    ap.add_argument("--transformers-serve", action="store_true", help="also time `transformers serve`")
    args = ap.parse_args()

    import torch

    from knowlab.augment.augment import AugmentConfig
    from knowlab.augment.http import OpenAIRewriter, serve_rewriter
    from knowlab.augment.local import HFRewriter, tiny_lm
    from knowlab.augment.rewriter import SamplingParams

    torch.set_num_threads(args.threads)
    root = Path(tempfile.mkdtemp(prefix="bench-rewrite-"))
    rows = make_rows(args.rows)
    rows_path = root / "in.jsonl"
    rows_path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    shuffle_path = root / "shuffle-in.jsonl"
    shuffle_path.write_text("".join(json.dumps(r) + "\n" for r in make_rows(args.shuffle_rows)))
    model_dir = Path(args.model) if args.model else tiny_lm(
        root / "model", [r["text"] for r in rows], vocab_size=args.vocab, n_layer=args.layers, n_embd=args.width)
    params = SamplingParams(temperature=0.8, top_p=0.95, max_new_tokens=args.max_new_tokens)
    model_cfg = AugmentConfig(style="paraphrase", max_attempts=1, chunk=args.rows, sampling=params)
    runs: dict[str, list[dict]] = {}
    local = HFRewriter(model_dir, params, batch_size=args.batch_size)
    n_params = sum(p.numel() for p in local.model.parameters())
    proc, serve_url = None, None
    if args.transformers_serve:
        port = free_port()
        exe = os.path.join(os.path.dirname(sys.executable), "transformers")
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        proc = subprocess.Popen([exe, "serve", str(model_dir), "--host", "127.0.0.1", "--port", str(port),
                                 "--device", "cpu"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(240):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).close()
                break
            except OSError:
                time.sleep(0.5)
        serve_url = f"http://127.0.0.1:{port}/v1"
    try:
        with serve_rewriter(local, max_batch=args.batch_size) as server:
            for _ in range(args.repeats):
                runs.setdefault("shuffle", []).append(run("shuffle", "shuffle", shuffle_path, root,
                                                          AugmentConfig(style="shuffle", max_attempts=1), args.shuffle_rows))
                todo = [("hf", local, model_cfg),
                        ("http (knowlab server)", OpenAIRewriter(server.url, params, model="knowlab",
                                                                 concurrency=args.concurrency), model_cfg)]
                if serve_url:
                    todo.append(("http (transformers serve)", OpenAIRewriter(
                        serve_url, params, concurrency=args.concurrency, timeout=300), model_cfg))
                for label, rewriter, cfg in todo:
                    runs.setdefault(label, []).append(run(label, rewriter, rows_path, root, cfg, args.rows))
                    if isinstance(rewriter, OpenAIRewriter):
                        rewriter.close()
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
    results = [{"backend": label, "rows": rs[0]["rows"],
                "median_rows_per_s": round(statistics.median(r["rows_per_s"] for r in rs), 2),
                "runs_rows_per_s": [r["rows_per_s"] for r in rs],
                "passed_fact_check": rs[-1]["passed_fact_check"]} for label, rs in runs.items()]
    report = {
        "model": f"{model_dir.name}: GPT-2 {args.layers} x {args.width}, vocab {len(local.tokenizer)}, "
                 f"{n_params / 1e6:.2f}M parameters, random weights" if not args.model else str(model_dir),
        "max_new_tokens": args.max_new_tokens, "batch_size": args.batch_size, "concurrency": args.concurrency,
        "threads": args.threads, "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
                                            f"load {os.getloadavg()[0]:.1f}, torch {torch.__version__}",
        "results": results,
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
