"""A probe run, from a model (or its folder) and a dataset to the result dict and its files.

Shared by P- and Q-probing (p_probe.py, q_probe.py): they differ only in the examples they
build and the positions they read.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from knowlab.models.runtime import load_model, pad_id, resolve_model_dir
from knowlab.probe.types import TASK_LABELS, ProbeConfig, build_labels, split_people


# ---- the run --------------------------------------------------------------------------------

def default_out(model_dir: str | Path) -> Path:
    """Where outputs go by default: the run folder (next to RUN/model), else the model folder."""
    path = Path(model_dir)
    folder = resolve_model_dir(path)
    return folder.parent if folder != path or folder.name == "model" else folder


def majority_baseline(train_y: np.ndarray, test_y: np.ndarray) -> np.ndarray:
    """(T,) accuracy on `test_y` of always answering the commonest class of `train_y`."""
    return np.array([np.mean(test_y[:, t] == np.bincount(train_y[:, t]).argmax()) for t in range(train_y.shape[1])])


def run_probe(kind: str, model, data, cfg: ProbeConfig, make_examples, position_names: list[str],
              show_progress: bool | None = False) -> dict:
    """Everything P- and Q-probing share: data, labels, split, training, the result dict."""
    from knowlab.config import to_dict
    from knowlab.data.dataset import Dataset
    from knowlab.io import code_version
    from knowlab.probe.engine import train_probe

    t0 = time.time()
    ds = data if isinstance(data, Dataset) else Dataset(data)
    model_path = None
    if isinstance(model, (str, Path)):
        model_path = str(resolve_model_dir(model))
        model = load_model(model, device="cpu", dtype="float32")  # the probe moves it to its device
    labels = build_labels(ds, cfg.tasks)
    train_people, test_people = split_people(ds, cfg)
    train = make_examples(ds, train_people, labels)
    test = make_examples(ds, test_people, labels)
    tok = ds.tokenizer
    out = train_probe(model, train, test, labels.n_classes, len(position_names), cfg, pad_id(tok),
                      desc=f"{kind}-probe", show_progress=show_progress)
    baseline = majority_baseline(train.y, test.y)

    def per_task(acc):  # (T, P) -> {task: [per position]} for P, {task: value} for Q
        return {t: (acc[i].round(5).tolist() if kind == "p" else round(float(acc[i, 0]), 5))
                for i, t in enumerate(cfg.tasks)}

    name = "model"
    if model_path:
        name = Path(model_path).parent.name if Path(model_path).name == "model" else Path(model_path).name
    result = {
        "kind": kind,
        "name": name,
        "model": model_path,
        "data": str(ds.path),
        "variant": ds.manifest.get("config", {}).get("variant"),
        "tasks": list(cfg.tasks),
        "task_labels": {t: TASK_LABELS[t] for t in cfg.tasks},
        "positions": position_names,
        "layer": out["layers"][-1],
        "layers": out["layers"],
        "accuracy": per_task(out["test"][-1]),
        "train_accuracy": per_task(out["train"][-1]),
        "baseline": {t: round(float(b), 5) for t, b in zip(cfg.tasks, baseline)},
        "n_classes": dict(zip(cfg.tasks, labels.n_classes)),
        "counts": {"train_people": len(train_people), "test_people": len(test_people),
                   "train_examples": len(train), "test_examples": len(test)},
        "loss": out["loss"],
        "config": to_dict(cfg),
        "code_version": code_version(),
        "seconds": {"train": out["train_seconds"], "total": round(time.time() - t0, 2)},
    }
    if len(out["layers"]) > 1:
        result["accuracy_by_layer"] = {str(l): per_task(a) for l, a in zip(out["layers"], out["test"])}
    return result


def write_result(result: dict, out_dir: str | Path) -> tuple[Path, Path]:
    """`{kind}_probe.json` and `{kind}_probe.png` in `out_dir`, each written atomically."""
    from knowlab.io import write_json_atomic
    from knowlab.probe import plots

    out = Path(out_dir)
    kind = result["kind"]
    fig = plots.plot_p_probe(result) if kind == "p" else plots.plot_q_probe({result.get("name") or "model": result})
    json_path, png_path = out / f"{kind}_probe.json", out / f"{kind}_probe.png"
    write_json_atomic(json_path, result)
    plots.save(fig, png_path)
    return json_path, png_path
