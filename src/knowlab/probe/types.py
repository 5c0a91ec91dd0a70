"""What P- and Q-probing share: tasks, configs, labels and examples ([P] Section 5, App. E and F).

A probe reads the hidden states of a *frozen* pretrained model at a few positions of an input
and trains, per task, a low-rank update of the token embedding (E + U V, U: vocab x r, V: r x d,
U starts at 0 so the model starts exactly as pretrained), a norm with affine parameters and a
linear classifier per (task, read position). P-probing reads six positions of a bio entry
(LayerNorm, rank 2, batch 50); Q-probing reads one position, the end of a name query (BatchNorm,
rank 16, batch 200). Both use the same 11 tasks and AdamW (eps 1e-6, wd 0.3, lr 1e-3, no
warm-up, linear decay to 0), with dropout on in the frozen model while the probe trains (at
the model's own rate, 0 for knowlab's presets, unless `dropout_rate` sets one).

The training loop, and the cost of per-task versus shared embedding updates, are in
`knowlab.probe.engine`; a probe run from model to result file is `knowlab.probe.run`.

Any model works whose forward takes `inputs_embeds`, `attention_mask` and
`output_hidden_states=True` and returns HF-style `hidden_states` (a tuple, index 0 = the
embedding output, -1 = the last layer), with `get_input_embeddings()`. HF causal LMs are called
through `base_model`, which skips the LM head over every position.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from knowlab.data.schema import ATTRIBUTES, SHORT
from knowlab.errors import KnowlabError
from knowlab.train.optim import OptimConfig

# The paper's 11 tasks: birth month (the first-token task of the birth date), then first token
# and whole value of each of the other five attributes.
TASKS: tuple[str, ...] = ("birth_month",) + tuple(
    f"{a}_{kind}" for a in ATTRIBUTES[1:] for kind in ("first", "whole"))
TASK_LABELS: dict[str, str] = {"birth_month": "first b_month"} | {
    f"{a}_{kind}": f"{kind} {SHORT[a]}" for a in ATTRIBUTES[1:] for kind in ("first", "whole")}


@dataclass
class ProbeOptimConfig(OptimConfig):
    """The probes' AdamW: wd 0.3, eps 1e-6, lr 1e-3, no warm-up, linear decay to 0 (betas and
    clipping are not stated in the paper; PyTorch's default betas, no clipping)."""

    lr: float = 1e-3
    weight_decay: float = 0.3
    eps: float = 1e-6
    beta2: float = 0.999
    warmup_steps: int = 0
    schedule: Literal["cosine", "linear", "constant"] = "linear"
    min_lr_ratio: float = 0.0
    grad_clip: float = 0.0


@dataclass
class ProbeConfig:
    """Paper defaults of P-probing; `QProbeConfig` changes what differs for Q-probing."""

    steps: int = 30_000
    batch_size: int = 50
    rank: int = 2  # rank of the embedding update; 0 = none
    norm: Literal["layernorm", "batchnorm"] = "layernorm"
    share_embedding_update: bool = False  # true: one update for all tasks, one forward (see docstring)
    layer: int | Literal["all"] = -1  # hidden_states index (0 = embeddings, -1 = last) or all of them
    tasks: list[str] = field(default_factory=lambda: list(TASKS))
    # Dropout on in the frozen model while the probe trains, as in the paper. A no-op for models
    # pretrained with dropout 0, which every knowlab preset is, unless dropout_rate sets a rate.
    dropout: bool = True
    # With dropout on: the frozen model's dropout rate while the probe trains (every dropout
    # layer, attention's included). None keeps the model's own rate. The paper's is not stated.
    dropout_rate: float | None = None
    train_fraction: float = 1.0  # share of P_train people the probe trains on
    max_test_people: int = 0  # evaluate on at most this many P_test people (0 = all)
    max_train_eval: int = 1000  # examples of the training people to report train accuracy on
    eval_batch_size: int = 200
    micro_batch: int = 0  # split a step's batch into chunks (gradient accumulation); 0 = no split
    optim: ProbeOptimConfig = field(default_factory=ProbeOptimConfig)
    seed: int = 0
    device: str = "auto"  # auto = cuda when available
    amp: bool = True  # bf16 autocast of the frozen forward on CUDA
    threads: int = 0  # CPU threads for torch (process-wide); 0 = leave as is

    def validate(self) -> None:
        bad = [t for t in self.tasks if t not in TASKS]
        if bad or not self.tasks:
            raise KnowlabError(f"tasks: unknown task '{bad[0] if bad else ''}'; valid: {', '.join(TASKS)}")
        if len(set(self.tasks)) != len(self.tasks):
            raise KnowlabError("tasks: each task at most once")
        for key in ("steps", "batch_size", "eval_batch_size"):
            if getattr(self, key) < 1:
                raise KnowlabError(f"{key} must be at least 1, got {getattr(self, key)}")
        if self.rank < 0:
            raise KnowlabError(f"rank must be 0 or more, got {self.rank}")
        if self.dropout_rate is not None and not 0.0 <= self.dropout_rate < 1.0:
            raise KnowlabError(f"dropout_rate must be within [0, 1), got {self.dropout_rate}")
        if not 0.0 < self.train_fraction <= 1.0:
            raise KnowlabError(f"train_fraction must be within (0, 1], got {self.train_fraction}")
        if min(self.micro_batch, self.max_test_people, self.max_train_eval, self.threads) < 0:
            raise KnowlabError("micro_batch, max_test_people, max_train_eval and threads must be 0 or more")


@dataclass
class PProbeConfig(ProbeConfig):
    pass


@dataclass
class QProbeConfig(ProbeConfig):
    batch_size: int = 200
    rank: int = 16
    norm: Literal["layernorm", "batchnorm"] = "batchnorm"


@dataclass
class ProbePreset:
    """A preset file (`configs/probe/<name>.yaml`): one section per probe kind."""

    p: PProbeConfig = field(default_factory=PProbeConfig)
    q: QProbeConfig = field(default_factory=QProbeConfig)


def load_probe_config(kind: str, preset: str | None = None, path: str | Path | None = None,
                      overrides: dict[str, Any] | None = None) -> ProbeConfig:
    """The `kind` ('p' or 'q') section of a preset or YAML file; overrides may omit the `p.` prefix."""
    from knowlab.config import load, preset_path

    if preset and path:
        raise KnowlabError("give either a preset or a config file, not both")
    src = path or (preset_path("probe", preset) if preset else None)
    fixed = {(k if k.split(".")[0] in ("p", "q") else f"{kind}.{k}"): v for k, v in (overrides or {}).items()}
    return getattr(load(ProbePreset, src, fixed), kind)


# ---- data: labels and examples --------------------------------------------------------------

@dataclass
class Labels:
    """Dense class index of every person for every task."""

    tasks: list[str]
    person_ids: np.ndarray  # (n_people,)
    classes: np.ndarray  # (n_people, T) int64
    n_classes: list[int]

    def of(self, person_ids: np.ndarray) -> np.ndarray:
        """(n,) person ids -> (n, T) classes."""
        row = {int(p): i for i, p in enumerate(self.person_ids)}
        return self.classes[[row[int(p)] for p in person_ids]]


def list_column(table, name: str) -> tuple[np.ndarray, np.ndarray]:
    """A list<int> column as (flat values, offsets), so row i is values[off[i]:off[i+1]]."""
    col = table.column(name).combine_chunks()
    return col.values.to_numpy(), col.offsets.to_numpy()


def build_labels(ds, tasks: list[str]) -> Labels:
    """Classes of every task, computed once. The first token of a value is the token the model
    saw in the person's first bio entry, so any tokenizer's convention is honoured."""
    people = ds.people
    ids = people.column("id").to_numpy()
    bios = ds.bios
    bio_pid = bios.column("person_id").to_numpy()
    uniq, first_row = np.unique(bio_pid, return_index=True)
    missing = np.setdiff1d(ids, uniq)
    if len(missing):
        raise KnowlabError(f"{ds.path}: person {missing[0]} has no bio entry; probing needs one per person")
    row_of = first_row[np.searchsorted(uniq, ids)]  # (n_people,) first bio row of each person
    values, offsets = list_column(bios, "input_ids")
    classes, n_classes = [], []
    for task in tasks:
        if task == "birth_month":
            raw = people.column("birth_month").to_numpy()
        else:
            attr, kind = task.rsplit("_", 1)
            if kind == "first":
                raw = values[offsets[row_of] + bios.column(f"{attr}_tok_start").to_numpy()[row_of]]
            else:
                raw = np.asarray(people.column(attr).to_pylist(), dtype=object)
        _, dense = np.unique(raw, return_inverse=True)
        classes.append(dense.reshape(-1))
        n_classes.append(int(dense.max()) + 1)
    return Labels(list(tasks), ids, np.stack(classes, 1).astype(np.int64), n_classes)


def split_people(ds, cfg: ProbeConfig) -> tuple[np.ndarray, np.ndarray]:
    """Probe-train people (P_train, or a seeded share of it) and held-out people (P_test)."""
    ids = ds.people.column("id").to_numpy()
    split = np.asarray(ds.people.column("split").to_pylist())
    train, test = ids[split == "train"], ids[split == "test"]
    if not len(train) or not len(test):
        raise KnowlabError(f"{ds.path}: probing needs people in both P_train and P_test "
                           f"(has {len(train)} and {len(test)})")
    rng = np.random.default_rng(cfg.seed)
    if cfg.train_fraction < 1.0:
        train = np.sort(rng.choice(train, max(1, round(cfg.train_fraction * len(train))), replace=False))
    if cfg.max_test_people and len(test) > cfg.max_test_people:
        test = np.sort(rng.choice(test, cfg.max_test_people, replace=False))
    return train, test


@dataclass
class Examples:
    """Probe inputs: token sequences, where to read them, and the targets."""

    ids: list[np.ndarray]  # token ids of each example (variable length)
    pos: np.ndarray  # (n, P) read positions
    y: np.ndarray  # (n, T) class per task
    person: np.ndarray  # (n,) person id

    def __len__(self) -> int:
        return len(self.ids)

    def batch(self, idx, pad_id: int, device):
        import torch

        seqs = [self.ids[i] for i in idx]
        S = max(len(s) for s in seqs)
        ids = np.full((len(seqs), S), pad_id, dtype=np.int64)
        mask = np.zeros((len(seqs), S), dtype=np.int64)
        for r, s in enumerate(seqs):  # right padding: causal positions before the pad are unchanged
            ids[r, : len(s)] = s
            mask[r, : len(s)] = 1
        t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(device)  # noqa: E731
        # No padding, no mask: lets attention take its fast unmasked (causal) path.
        return t(ids), (None if mask.all() else t(mask)), t(self.pos[idx]), t(self.y[idx])
