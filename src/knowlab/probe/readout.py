"""Probe-free linear readout: is an attribute linearly readable from the frozen model at all?

The P- and Q-probes train an embedding update and a norm alongside their classifier. With a few
hundred people the embedding update alone can fit the training people's labels (a tiny Q-probe
reaches 100% on them and 20% on held-out people), so a low probe score does not tell whether the
model or the probe is at fault. The readout has no trainable part in the model: a multinomial
logistic regression (L2, full-batch L-BFGS) on frozen hidden states of the P_train people, scored
on the P_test people, at every layer and at two places:

- `name`: the last token of the bare name `[EOS] + full name` (where Q-probing looks; the token
  before Q-probing's end marker, whose causal hidden state the marker cannot change);
- `pos1`: the position just before the first attribute of each person's first bio entry
  (P-probing's first position).

    knowlab probe readout RUN_OR_MODEL_DIR --data DATA [--out DIR] [--l2 1e-3] [--threads 1]
                          [--train-people K]

`--train-people K` fits on K P_train people only (a seeded draw), so readouts of datasets with
different numbers of people compare at the same regression sample size; P_test is scored whole.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

PLACES = ("name", "pos1")


@torch.no_grad()
def hidden_at(model, seqs: list[np.ndarray], where: list[int]) -> torch.Tensor:
    """(layers + 1, n, d) hidden states of each sequence at its read position."""
    out = []
    for seq, pos in zip(seqs, where):
        hs = model(input_ids=torch.as_tensor(seq)[None], output_hidden_states=True).hidden_states
        out.append(torch.stack([h[0, pos] for h in hs]))
    return torch.stack(out, 1).float()


def fit_score(x_tr: torch.Tensor, y_tr: torch.Tensor, x_te: torch.Tensor, y_te: torch.Tensor,
              n_classes: int, l2: float) -> float:
    """Held-out accuracy of an L2 logistic regression on standardised features."""
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


def linear_readout(model_dir: str | Path, data: str | Path, l2: float = 1e-3, seed: int = 0,
                   train_people: int = 0) -> dict:
    """The result dict written as readout.json: accuracy[place][task] = held-out accuracy at
    layers 0 (embeddings) .. L (last), baseline[task] = majority-class accuracy. train_people > 0
    fits on that many P_train people, drawn with `seed` (0 = all of P_train)."""
    from knowlab.data.dataset import Dataset
    from knowlab.errors import KnowlabError
    from knowlab.io import code_version
    from knowlab.models.runtime import load_model, resolve_model_dir
    from knowlab.probe.p_probe import p_examples
    from knowlab.probe.q_probe import q_examples
    from knowlab.probe.types import build_labels
    from knowlab.report.verdicts import MAIN_TASKS

    if l2 < 0:
        raise KnowlabError(f"--l2 must be 0 or more, got {l2}")
    if train_people < 0:
        raise KnowlabError(f"--train-people must be 0 (all of P_train) or more, got {train_people}")
    t0 = time.time()
    torch.manual_seed(seed)
    ds = Dataset(data)
    folder = resolve_model_dir(model_dir)
    model = load_model(folder, device="cpu", dtype="float32").eval()
    labels = build_labels(ds, list(MAIN_TASKS))
    ids = labels.person_ids
    is_train = np.asarray(ds.people.column("split").to_pylist()) == "train"
    if is_train.all() or not is_train.any():
        raise KnowlabError(f"{ds.path}: the readout needs people on both sides of the train/test split")
    is_test = ~is_train
    if train_people:
        pool = np.flatnonzero(is_train)
        if train_people > len(pool):
            raise KnowlabError(f"--train-people {train_people}: {ds.path} has only {len(pool)} P_train people")
        keep = np.random.default_rng(seed).choice(pool, size=train_people, replace=False)
        is_train = np.zeros_like(is_train)
        is_train[keep] = True
    names = q_examples(ds, ids, labels)
    bios = p_examples(ds, ids, labels)
    uniq, first = np.unique(bios.person, return_index=True)
    first = first[np.searchsorted(uniq, ids)]  # each person's first bio entry, in people order
    feats = {"name": hidden_at(model, names.ids, list(names.pos[:, 0] - 1)),
             "pos1": hidden_at(model, [bios.ids[i] for i in first], list(bios.pos[first, 0]))}
    accuracy: dict[str, dict[str, list[float]]] = {place: {} for place in PLACES}
    baseline = {}
    for t, task in enumerate(labels.tasks):
        y = torch.as_tensor(labels.classes[:, t])
        baseline[task] = round(float((y[is_test] == torch.bincount(y[is_train]).argmax()).float().mean()), 5)
        for place in PLACES:
            accuracy[place][task] = [round(fit_score(f[is_train], y[is_train], f[is_test], y[is_test],
                                                     labels.n_classes[t], l2), 5) for f in feats[place]]
    return {
        "kind": "readout",
        "name": folder.parent.name if folder.name == "model" else folder.name,
        "model": str(folder),
        "data": str(ds.path),
        "variant": ds.manifest.get("config", {}).get("variant"),
        "tasks": list(labels.tasks),
        "places": list(PLACES),
        "layers": int(feats["name"].shape[0]),
        "l2": l2,
        "accuracy": accuracy,
        "baseline": baseline,
        "counts": {"train_people": int(is_train.sum()), "test_people": int(is_test.sum())},
        "train_people_asked": train_people,
        "code_version": code_version(),
        "seconds": round(time.time() - t0, 2),
    }


def summary(result: dict) -> str:
    """One line per (place, task): accuracy at each layer and the majority baseline."""
    lines = [f"linear readout of {result['name']} ({result['counts']['test_people']} held-out people; "
             f"layers 0..{result['layers'] - 1}):"]
    for place in result["places"]:
        for task in result["tasks"]:
            accs = " ".join(f"{100 * a:5.1f}" for a in result["accuracy"][place][task])
            lines.append(f"  {place:5s} {task:19s} {accs}   (baseline {100 * result['baseline'][task]:.1f})")
    return "\n".join(lines)
