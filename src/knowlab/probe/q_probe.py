"""Q-probing (query-based, [P] Section 5.2 and App. F; Figure 7).

Input: only the person's full name, between a start and an end marker: [EOS] + tokens of the
name (tokenized as in the bios, with the prefix space) + [NAME_END]. Read: the last layer's
hidden state at the end marker. If an attribute can be read linearly there, the model stored
it on the name itself, which is what QA finetuning needs to extract it ([P] Result 5).
Trainable: a rank-16 embedding update per task, BatchNorm (affine) and a linear classifier;
batch 200. The same 11 tasks as P-probing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from knowlab.data.schema import NAME_END
from knowlab.errors import KnowlabError
from knowlab.probe.run import run_probe
from knowlab.probe.types import Examples, Labels, QProbeConfig

POSITIONS = ["name_end"]


def name_query(tok, names: list[str]) -> list[np.ndarray]:
    """[EOS] + name tokens + [NAME_END] for each name."""
    end = tok.convert_tokens_to_ids(NAME_END)
    if end is None or end == tok.unk_token_id:
        raise KnowlabError(f"the dataset's tokenizer has no {NAME_END} token; Q-probing needs it")
    encoded = tok(names, add_special_tokens=False)["input_ids"]
    return [np.array([tok.eos_token_id, *ids, end], dtype=np.int64) for ids in encoded]


def q_examples(ds, person_ids: np.ndarray, labels: Labels) -> Examples:
    """One name query per person, read at its last token."""
    people = ds.people
    row = {int(p): i for i, p in enumerate(people.column("id").to_numpy())}
    names = people.column("name").to_pylist()
    ids = name_query(ds.tokenizer, [names[row[int(p)]] for p in person_ids])
    pos = np.array([[len(s) - 1] for s in ids], dtype=np.int64)
    return Examples(ids=ids, pos=pos, y=labels.of(person_ids), person=np.asarray(person_ids))


def run_q_probe(model, data, cfg: QProbeConfig | None = None, show_progress: bool | None = False) -> dict:
    """Q-probe `model` (an nn.Module, or a path to an HF model or run folder) on dataset `data`.
    Returns the result dict written as q_probe.json: accuracy[task] = held-out accuracy,
    baseline[task] = majority-class accuracy, plus train accuracies, counts and config."""
    return run_probe("q", model, data, cfg or QProbeConfig(), q_examples, POSITIONS, show_progress)


def probe_model(model_dir: str | Path, data: str | Path, cfg: QProbeConfig | None = None,
                out: str | Path | None = None, show_progress: bool | None = False) -> dict:
    """`run_q_probe`, then q_probe.json and q_probe.png into `out` (default: next to the model)."""
    from knowlab.probe.run import default_out, write_result

    result = run_q_probe(model_dir, data, cfg, show_progress)
    write_result(result, out or default_out(model_dir))
    return result
