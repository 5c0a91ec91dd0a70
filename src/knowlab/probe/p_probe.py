"""P-probing (position-based, [P] Section 5.1 and App. E; Figure 5).

Input: a bio entry, preceded by EOS as in pretraining, through the frozen model. Read: the last
layer's hidden state at the six special positions, the token immediately before the first token
of each attribute value (usually the preposition: "on", "in", "at", "from"). Position j is the
j-th special position *in the text order of that entry*, so for permuted bios the attribute
behind position j varies from entry to entry, as in the paper. Every task (birth month; first
token and whole value of the other five attributes) is probed at all six positions, giving the
6 x 11 grid of Figure 5 / Figure 13: a task becomes readable at position j only if the model has
stored it by then. Trainable: a rank-2 embedding update per task, and LayerNorm + linear per
(task, position). Sharing the embedding update across tasks (`share_embedding_update=true`) runs
the frozen model once per batch instead of 11 times; see `knowlab.probe.engine`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from knowlab.data.schema import ATTRIBUTES
from knowlab.probe.run import run_probe
from knowlab.probe.types import Examples, Labels, PProbeConfig, list_column

POSITIONS = [f"pos{j + 1}" for j in range(len(ATTRIBUTES))]


def special_positions(bios) -> np.ndarray:
    """(n, 6) read positions of every bio row, in text order, as indices into [EOS] + input_ids.

    The token before the value's first token is input_ids[A_tok_start - 1]; prepending EOS
    shifts it by one, so its index is A_tok_start. A value at the very start of the text is
    read at the EOS itself.
    """
    starts = np.stack([bios.column(f"{a}_tok_start").to_numpy() for a in ATTRIBUTES], 1)
    return np.sort(starts, axis=1).astype(np.int64)


def position_attributes(bios) -> np.ndarray:
    """(n, 6) index into ATTRIBUTES of the value that follows each special position."""
    starts = np.stack([bios.column(f"{a}_tok_start").to_numpy() for a in ATTRIBUTES], 1)
    return np.argsort(starts, axis=1, kind="stable")


def p_examples(ds, person_ids: np.ndarray, labels: Labels) -> Examples:
    """Every bio entry of `person_ids`, as [EOS] + input_ids with its six read positions."""
    bios = ds.bios
    pid = bios.column("person_id").to_numpy()
    rows = np.flatnonzero(np.isin(pid, person_ids))
    sub = bios.take(rows)
    values, offsets = list_column(sub, "input_ids")
    eos = np.array([ds.tokenizer.eos_token_id], dtype=values.dtype)
    # Tokens after the last special position cannot change a causal model's states before it,
    # but a bidirectional one (GBERT) reads them, so the whole entry is kept.
    ids = [np.concatenate([eos, values[offsets[i]: offsets[i + 1]]]) for i in range(len(sub))]
    return Examples(ids=ids, pos=special_positions(sub), y=labels.of(pid[rows]), person=pid[rows])


def run_p_probe(model, data, cfg: PProbeConfig | None = None, show_progress: bool | None = False) -> dict:
    """P-probe `model` (an nn.Module, or a path to an HF model or run folder) on dataset `data`
    (a `Dataset` or its folder). Returns the result dict written as p_probe.json:
    accuracy[task] = six held-out accuracies (positions in text order), baseline[task] =
    majority-class accuracy, plus train accuracies, counts, loss curve and config."""
    from knowlab.data.dataset import Dataset

    ds = data if isinstance(data, Dataset) else Dataset(data)
    result = run_probe("p", model, ds, cfg or PProbeConfig(), p_examples, POSITIONS, show_progress)
    # Which attribute follows each position, and how often: always the same one in unpermuted
    # bios (the heatmap then labels the columns with it), a mix in permuted ones.
    attrs = position_attributes(ds.bios)
    result["position_attributes"] = []
    for j in range(len(POSITIONS)):
        counts = np.bincount(attrs[:, j], minlength=len(ATTRIBUTES))
        result["position_attributes"].append(
            {"attribute": ATTRIBUTES[int(counts.argmax())], "share": round(float(counts.max() / counts.sum()), 4)})
    return result


def probe_model(model_dir: str | Path, data: str | Path, cfg: PProbeConfig | None = None,
                out: str | Path | None = None, show_progress: bool | None = False) -> dict:
    """`run_p_probe`, then p_probe.json and p_probe.png into `out` (default: next to the model)."""
    from knowlab.probe.run import default_out, write_result

    result = run_p_probe(model_dir, data, cfg, show_progress)
    write_result(result, out or default_out(model_dir))
    return result
