"""Validation copies of a dataset: settings are chosen on P_train, never on P_test.

`knowlab data holdout DATA --out DIR` writes a dataset folder with the same people, bios,
tokenizer and QA, minus every P_test person, and with a seeded `fraction` of P_train relabelled
as the test split. A model pretrained on DATA (which saw every bio) can then be finetuned and
evaluated on DIR exactly as on DATA: finetuning reads the `train` split, evaluation the `test`
split, and both now lie inside P_train. The original P_test stays untouched for the final run.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from knowlab.data.dataset import Dataset
from knowlab.errors import KnowlabError
from knowlab.io import atomic_dir, code_version, sha256_file, write_json_atomic, write_text_atomic

SPLIT_TABLES = ("people", "bios", "qa")  # every table with a split column


def holdout_ids(people: pa.Table, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(kept training ids, validation ids): a seeded `fraction` of P_train becomes validation."""
    train = sorted(pc.filter(people["id"], pc.equal(people["split"], "train")).to_pylist())
    n_val = int(round(fraction * len(train)))
    if not 0 < n_val < len(train):
        raise KnowlabError(f"fraction={fraction} leaves {n_val} of {len(train)} P_train people for validation; "
                           "choose a fraction that keeps at least one person on each side")
    # A stream of its own (the second word tags it), apart from the dataset's generation streams.
    order = np.random.default_rng(np.random.SeedSequence([seed, 0x401D])).permutation(len(train))
    val = sorted(train[k] for k in order[:n_val])
    keep = sorted(set(train) - set(val))
    return keep, val


def _relabel(table: pa.Table, id_col: str, keep: list[int], val: list[int]) -> pa.Table:
    ids = table[id_col]
    table = table.filter(pc.is_in(ids, pa.array(keep + val, ids.type)))
    split = pc.if_else(pc.is_in(table[id_col], pa.array(val, ids.type)), "test", "train")
    return table.set_column(table.schema.get_field_index("split"), "split", split)


def write_holdout(data: str | Path, out: str | Path, fraction: float = 0.5, seed: int = 0,
                  overwrite: bool = False) -> dict:
    """Write the validation copy of `data` to `out` (atomically); returns its manifest."""
    src = Dataset(data)
    if src.manifest.get("holdout"):
        raise KnowlabError(f"{src.path} is already a holdout copy; make the holdout from the original dataset")
    out = Path(out)
    if out.exists() and not overwrite:
        raise KnowlabError(f"output folder already exists: {out} (pass --overwrite to replace it)")
    keep, val = holdout_ids(src.people, fraction, seed)
    with atomic_dir(out, overwrite=overwrite) as tmp:
        counts = dict(src.manifest["counts"])
        for name in SPLIT_TABLES:
            table = _relabel(src.table(name), "id" if name == "people" else "person_id", keep, val)
            pq.write_table(table, tmp / f"{name}.parquet")
            counts[name] = table.num_rows
        counts["p_train"], counts["p_test"] = len(keep), len(val)
        shutil.copytree(src.path / "tokenizer", tmp / "tokenizer")
        card = (src.path / "README.md").read_text()
        write_text_atomic(tmp / "README.md", card + (
            f"\n## Holdout copy\n\nValidation copy of `{src.path}`: its P_test people are removed and "
            f"{len(val)} of its {len(keep) + len(val)} P_train people (seed {seed}) form the test split "
            "here. Choose settings on this folder; report results on the original.\n"))
        manifest = {**src.manifest, "counts": counts, "code_version": code_version(),
                    "holdout": {"source": str(src.path.resolve()), "fraction": fraction, "seed": seed,
                                "source_files": src.manifest.get("files", {})},
                    "files": {str(p.relative_to(tmp)): sha256_file(p)
                              for p in sorted(tmp.rglob("*")) if p.is_file()}}
        write_json_atomic(tmp / "manifest.json", manifest)
    return manifest
