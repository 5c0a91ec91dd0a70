"""Memorisation check: a tiny model pretrained on a small population learns its bios.

Generates a bioS dataset (default 100 people, single), pretrains the `tiny` preset on it
(4 x 128 gpt2-rotary, context 128, batch 32), then measures BIO first-token accuracy: for every
bio entry (fed after an EOS, as in the packed stream), whether the argmax next-token prediction
at the position before each attribute value equals the value's first token. Target: >= 99%.

    python benchmarks/memorise.py --out /tmp/memorise [--people 100] [--steps 1500] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch


def bio_first_token_accuracy(model, dataset, batch: int = 64) -> dict[str, float]:
    """Per-attribute share of bios whose value's first token is the argmax prediction."""
    from knowlab.data.schema import ATTRIBUTES

    bios = dataset.bios
    ids = bios.column("input_ids").to_pylist()
    starts = {a: bios.column(f"{a}_tok_start").to_pylist() for a in ATTRIBUTES}
    eos = dataset.tokenizer.eos_token_id
    hits = {a: 0 for a in ATTRIBUTES}
    model.eval()
    with torch.no_grad():
        for i in range(0, len(ids), batch):
            rows = [[eos] + r for r in ids[i : i + batch]]
            width = max(map(len, rows))
            x = torch.tensor([r + [eos] * (width - len(r)) for r in rows])  # right padding: causal, harmless
            pred = model(input_ids=x).logits.argmax(-1)
            for j, row in enumerate(rows):
                for a in ATTRIBUTES:
                    t = starts[a][i + j] + 1  # +1: the EOS in front
                    hits[a] += int(pred[j, t - 1] == row[t])
    acc = {a: hits[a] / len(ids) for a in ATTRIBUTES}
    acc["mean"] = sum(acc.values()) / len(ATTRIBUTES)
    return acc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="/tmp/knowlab-memorise")
    ap.add_argument("--people", type=int, default=100)
    ap.add_argument("--variant", default="single")
    ap.add_argument("--steps", type=int, default=None, help="default: the tiny preset's")
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()

    from knowlab.config import from_dict
    from knowlab.data.config import DataConfig
    from knowlab.data.dataset import Dataset, write_dataset
    from knowlab.train.cli import load_pretrain_config
    from knowlab.train.pretrain import load_final_model, pretrain

    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    write_dataset(from_dict(DataConfig, {"people": args.people, "variant": args.variant, "vocab_size": 2048}), out / "data")
    overrides = [f"threads={args.threads}", "checkpoint_every=0"] + ([f"steps={args.steps}"] if args.steps else [])
    cfg = load_pretrain_config("tiny", overrides=overrides)
    t0 = time.time()
    pretrain(cfg, out / "data", out / "run")
    minutes = (time.time() - t0) / 60
    model, _ = load_final_model(out / "run")
    acc = bio_first_token_accuracy(model, Dataset(out / "data"))
    result = {"people": args.people, "variant": args.variant, "steps": cfg.steps, "minutes": round(minutes, 2),
              "bio_first_token_accuracy": acc}
    (out / "memorise.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0 if acc["mean"] >= 0.99 else 1


if __name__ == "__main__":
    sys.exit(main())
