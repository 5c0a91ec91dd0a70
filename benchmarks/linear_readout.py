"""Is an attribute linearly readable from a frozen model at all? A probe-free check.

The P- and Q-probes train an embedding update and a norm alongside the classifier, on few
people at the tiny scale. This script asks the simpler question with no trainable part in the
model: fit a multinomial logistic regression (L2, full-batch L-BFGS) on the frozen hidden states
of the P_train people and score it on the P_test people, at every layer, at two places:

- `name`: the last token of the bare name `[EOS] + full name` (where Q-probing looks);
- `pos1`: the special position before the first attribute of each person's first bio entry
  (P-probing's first position).

    python benchmarks/linear_readout.py RUN_OR_MODEL_DIR --data DATA_DIR [--l2 1e-3] [--threads 1]

Prints one line per (place, attribute): held-out accuracy (%) at layers 0..L and the majority
baseline. Used for the tiny-scale findings in docs/probing.md.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from knowlab.data.dataset import Dataset
from knowlab.data.schema import ATTRIBUTES
from knowlab.models.io import load_model
from knowlab.probe.common import list_column
from knowlab.probe.p_probe import special_positions
from knowlab.probe.q_probe import name_query


@torch.no_grad()
def hidden_at(model, seqs: list[np.ndarray], where: list[int]) -> torch.Tensor:
    """(layers + 1, n, d) hidden states of each sequence at its read position."""
    out = []
    for seq, pos in zip(seqs, where):
        hs = model(input_ids=torch.as_tensor(seq)[None], output_hidden_states=True).hidden_states
        out.append(torch.stack([h[0, pos] for h in hs]))
    return torch.stack(out, 1).float()


def fit_score(x_tr, y_tr, x_te, y_te, n_classes: int, l2: float) -> float:
    mu, sd = x_tr.mean(0), x_tr.std(0) + 1e-6
    x_tr, x_te = (x_tr - mu) / sd, (x_te - mu) / sd
    lin = torch.nn.Linear(x_tr.shape[1], n_classes)
    opt = torch.optim.LBFGS(lin.parameters(), max_iter=300, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(lin(x_tr), y_tr) + l2 * lin.weight.square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    return float((lin(x_te).argmax(1) == y_te).float().mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--data", required=True)
    ap.add_argument("--l2", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    ds = Dataset(args.data)
    model = load_model(args.model).eval()
    people = ds.people
    ids = people.column("id").to_numpy()
    is_train = np.asarray(people.column("split").to_pylist()) == "train"

    queries = [q[:-1] for q in name_query(ds.tokenizer, people.column("name").to_pylist())]  # no end marker
    bios = ds.bios
    pid = bios.column("person_id").to_numpy()
    uniq, first_row = np.unique(pid, return_index=True)
    rows = first_row[np.searchsorted(uniq, ids)]
    values, offsets = list_column(bios, "input_ids")
    eos = ds.tokenizer.eos_token_id
    first_bios = [np.concatenate([[eos], values[offsets[r]:offsets[r + 1]]]) for r in rows]
    pos1 = special_positions(bios)[rows, 0]
    places = {"name": hidden_at(model, queries, [len(q) - 1 for q in queries]),
              "pos1": hidden_at(model, first_bios, list(pos1))}

    labels = {a: np.unique(np.asarray(people.column(a).to_pylist(), dtype=object), return_inverse=True)[1]
              for a in ("birth_month", *ATTRIBUTES[1:])}
    for place, feats in places.items():
        for attr, y in labels.items():
            y = torch.as_tensor(y.reshape(-1))
            base = float((y[~is_train] == torch.bincount(y[is_train]).argmax()).float().mean())
            accs = [fit_score(f[is_train], y[is_train], f[~is_train], y[~is_train], int(y.max()) + 1, args.l2)
                    for f in feats]
            print(f"{place:5s} {attr:13s} " + " ".join(f"{100 * a:5.1f}" for a in accs) + f"   (baseline {100 * base:.1f})")


if __name__ == "__main__":
    main()
