"""Memorisation check: a tiny model pretrained on a small population learns its bios.

Generates a bioS dataset (default 100 people, single), pretrains the `tiny` preset on it
(4 x 128 gpt2-rotary, context 128, batch 32), then measures BIO first-token accuracy: for every
bio entry (fed after an EOS, as in the packed stream), whether the argmax next-token prediction
at the position before each attribute value equals the value's first token. Target: >= 99% on
the values that follow the person's name (values a template puts before the name cannot be known).

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


def bio_first_token_accuracy(model, dataset, batch: int = 64) -> dict[str, dict[str, float]]:
    """Per-attribute share of bios whose value's first token is the argmax prediction.

    "all" counts every value; "after_name" only values that come after the person's name in the
    bio. Some templates open with the value ("On May 11, 2060, Marilyn ... was born"), where no
    model can know whose bio it is yet, so "all" cannot reach 100% on such datasets.
    """
    from knowlab.data.schema import ATTRIBUTES

    bios = dataset.bios
    ids = bios.column("input_ids").to_pylist()
    starts = {a: bios.column(f"{a}_tok_start").to_pylist() for a in ATTRIBUTES}
    names = dict(zip(dataset.people.column("id").to_pylist(), dataset.people.column("name").to_pylist()))
    texts = bios.column("text").to_pylist()
    name_at = [t.find(names[p]) for t, p in zip(texts, bios.column("person_id").to_pylist())]
    after = {a: [s > n for s, n in zip(bios.column(f"{a}_start").to_pylist(), name_at)] for a in ATTRIBUTES}
    eos = dataset.tokenizer.eos_token_id
    hits = {a: [False] * len(ids) for a in ATTRIBUTES}
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
                    hits[a][i + j] = bool(pred[j, t - 1] == row[t])
    out: dict[str, dict[str, float]] = {"all": {}, "after_name": {}}
    for a in ATTRIBUTES:
        out["all"][a] = sum(hits[a]) / len(ids)
        kept = [h for h, ok in zip(hits[a], after[a]) if ok]
        out["after_name"][a] = sum(kept) / len(kept) if kept else float("nan")
    for part in out.values():
        part["mean"] = sum(part.values()) / len(ATTRIBUTES)
    out["values_before_name"] = sum(not ok for a in ATTRIBUTES for ok in after[a])
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="/tmp/knowlab-memorise")
    ap.add_argument("--people", type=int, default=100)
    ap.add_argument("--variant", default="single")
    ap.add_argument("--steps", type=int, default=None, help="default: the tiny preset's")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--eval-only", action="store_true", help="measure an existing --out run again")
    args = ap.parse_args()

    from knowlab.config import from_dict
    from knowlab.data.config import DataConfig
    from knowlab.data.dataset import Dataset, write_dataset
    from knowlab.train.cli import load_pretrain_config
    from knowlab.models.runtime import load_model
    from knowlab.train.pretrain import pretrain

    out = Path(args.out)
    overrides = [f"threads={args.threads}", "checkpoint_every=0"] + ([f"steps={args.steps}"] if args.steps else [])
    cfg = load_pretrain_config("tiny", overrides=overrides)
    if args.eval_only:
        minutes = json.loads((out / "run" / "DONE").read_text())["elapsed"] / 60
    else:
        shutil.rmtree(out, ignore_errors=True)
        write_dataset(from_dict(DataConfig, {"people": args.people, "variant": args.variant, "vocab_size": 2048}), out / "data")
        t0 = time.time()
        pretrain(cfg, out / "data", out / "run")
        minutes = (time.time() - t0) / 60
    model = load_model(out / "run", device="cpu")
    acc = bio_first_token_accuracy(model, Dataset(out / "data"))
    result = {"people": args.people, "variant": args.variant, "steps": cfg.steps, "minutes": round(minutes, 2),
              "bio_first_token_accuracy": acc}
    (out / "memorise.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0 if acc["after_name"]["mean"] >= 0.99 else 1


if __name__ == "__main__":
    sys.exit(main())
