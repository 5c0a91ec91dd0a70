"""JSONL copies of a dataset folder, for tools that prefer JSON lines to Parquet."""

from __future__ import annotations

import json
from pathlib import Path

from knowlab.data.dataset import Dataset
from knowlab.io import atomic_dir


def export_jsonl(data: str | Path, out: str | Path) -> list[Path]:
    ds = Dataset(data)
    out = Path(out)
    written = []
    with atomic_dir(out, overwrite=True) as tmp:
        for name in ("people", "bios", "qa"):
            table = ds.table(name)
            with open(tmp / f"{name}.jsonl", "w", encoding="utf-8") as fh:
                for batch in table.to_batches(max_chunksize=10_000):
                    for row in batch.to_pylist():
                        fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            written.append(out / f"{name}.jsonl")
    return written
