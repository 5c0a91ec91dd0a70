"""How the study tokenizer splits the names of a dataset, and how many name tokens P_test
people share with P_train people: the Q-probe's embedding update moves only tokens that the
training people's names contain, so a held-out person whose name tokens appear in no training
name is read by the frozen model plus the probe's norm and classifier alone.

Usage: python measure.py DATA_DIR [DATA_DIR ...]   (folders written by `knowlab data`)
Prints one JSON line per folder. Reads the folder only; no knowlab import needed.
"""

import collections
import json
import sys
from pathlib import Path

import pyarrow.parquet as pq
from transformers import AutoTokenizer


def measure(data: Path) -> dict:
    people = pq.read_table(data / "people.parquet", columns=["name", "split"]).to_pylist()
    tok = AutoTokenizer.from_pretrained(str(data / "tokenizer"))
    ids = [tok(" " + p["name"], add_special_tokens=False)["input_ids"] for p in people]
    last_owners = collections.Counter(x[-1] for x in ids)
    train_tokens = {t for x, p in zip(ids, people) if p["split"] == "train" for t in x}
    test = [x for x, p in zip(ids, people) if p["split"] == "test"]
    pct = lambda k, n: round(100 * k / n, 1)  # noqa: E731
    return {
        "data": data.name,
        "people": len(people),
        "tokens_per_name": round(sum(map(len, ids)) / len(ids), 2),
        "last_token_own_pct": pct(sum(last_owners[x[-1]] == 1 for x in ids), len(ids)),
        "test_last_token_in_train_pct": pct(sum(x[-1] in train_tokens for x in test), len(test)),
        "test_all_tokens_in_train_pct": pct(sum(all(t in train_tokens for t in x) for x in test), len(test)),
        "test_no_token_in_train_pct": pct(sum(not any(t in train_tokens for t in x) for x in test), len(test)),
    }


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(json.dumps(measure(Path(arg))))
