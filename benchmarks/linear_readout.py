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
from knowlab.models.runtime import load_model
from knowlab.probe.types import build_labels
from knowlab.probe.p_probe import p_examples
from knowlab.probe.q_probe import q_examples
from knowlab.report.verdicts import MAIN_TASKS


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
    # The probes' own inputs and classes. Q-probing's query ends with a name-end marker; the
    # token before it is the name's last, whose causal hidden state the marker cannot change.
    labels = build_labels(ds, list(MAIN_TASKS))
    ids = labels.person_ids
    is_train = np.asarray(ds.people.column("split").to_pylist()) == "train"
    names = q_examples(ds, ids, labels)
    bios = p_examples(ds, ids, labels)
    uniq, first = np.unique(bios.person, return_index=True)
    first = first[np.searchsorted(uniq, ids)]  # each person's first bio entry, in people order
    places = {"name": hidden_at(model, names.ids, list(names.pos[:, 0] - 1)),
              "pos1": hidden_at(model, [bios.ids[i] for i in first], list(bios.pos[first, 0]))}

    for place, feats in places.items():
        for t, task in enumerate(labels.tasks):
            y = torch.as_tensor(labels.classes[:, t])
            base = float((y[~is_train] == torch.bincount(y[is_train]).argmax()).float().mean())
            accs = [fit_score(f[is_train], y[is_train], f[~is_train], y[~is_train], labels.n_classes[t], args.l2)
                    for f in feats]
            print(f"{place:5s} {task:19s} " + " ".join(f"{100 * a:5.1f}" for a in accs) + f"   (baseline {100 * base:.1f})")


if __name__ == "__main__":
    main()
