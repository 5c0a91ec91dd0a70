"""`knowlab data show`: counts and a few rendered examples of a dataset folder."""

from __future__ import annotations

from knowlab.data.dataset import Dataset
from knowlab.data.schema import ATTRIBUTES


def show(path: str, examples: int = 3) -> str:
    ds = Dataset(path)
    c = ds.manifest["counts"]
    cfg = ds.manifest["config"]
    lines = [
        f"{path}: variant {cfg['variant']}, seed {cfg['seed']}",
        f"  people {c['people']:,} (P_train {c['p_train']:,}, P_test {c['p_test']:,}), "
        f"bios {c['bios']:,}, QAs {c['qa']:,}, vocabulary {c['vocab_size']:,}",
    ]
    if cfg.get("celebrities"):
        lines.append(f"  celebrities {cfg['celebrities']:,} as {cfg['celebrity_variant']}")
    bios = ds.table("bios", columns=["person_id", "entry", "text", *[f"{a}_start" for a in ATTRIBUTES], *[f"{a}_end" for a in ATTRIBUTES]])
    for row in bios.slice(0, examples).to_pylist():
        lines.append(f"\n  bio of person {row['person_id']} (entry {row['entry']}):\n    {row['text']}")
        marks = ", ".join(f"{a}={row['text'][row[f'{a}_start']:row[f'{a}_end']]!r}" for a in ATTRIBUTES)
        lines.append(f"    spans: {marks}")
    qa = ds.table("qa", columns=["text", "split"]).slice(0, min(6, examples * 2)).to_pylist()
    lines.append("\n  QA:")
    lines += [f"    [{q['split']}] {q['text']}" for q in qa]
    return "\n".join(lines)
