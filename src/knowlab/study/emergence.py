"""`knowlab study run emergence`: where each result of the paper appears as scale grows.

For every result that a small scale may not show, a sweep along the axis that drives it
(docs/emergence.md). Every point is an ordinary run of the planner (the same data, pretrain,
finetune, eval and probe runs as the other studies, cached and shared with them), tagged with
the result, the axis and the value it stands for; a run on two axes (the preset's own point)
carries both tags and is trained once.

    Result 1    mixed training, P_test QA against people N (at fixed exposures) and exposures
    Result 6    the minority with and without celebrities against the minority's exposures
    Results 4-5 Q-probe next to QA accuracy against model width, depth, people N and exposures, with
                the probe-free linear readout (probe/readout.py) as the control
    Result 7    GBERT's per-attribute QA accuracy against masked-LM exposures
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from knowlab.study.config import plain_number as _num

if TYPE_CHECKING:  # types only: plan.py calls this module, an import back would close a circle
    from knowlab.study.plan import Planner, Run

HEAD_DIM = 32  # width / heads on the width axis, the tiny preset's 128 / 4


def _point(run: Run, result: str, axis: str, value: Any) -> Run:
    points = run.tags.setdefault("emergence", [])
    if {"result": result, "axis": axis, "value": value} not in points:
        points.append({"result": result, "axis": axis, "value": value})
    return run


def _pretrain_shape(pl: Planner) -> tuple[int, int, int]:
    """(layers, heads, width) of the study's pretrain preset."""
    from knowlab.train.cli import load_pretrain_config

    return load_pretrain_config(pl.cfg.pretrain_preset).model.shape()


def mixed(pl: Planner, seed: int) -> list[Run]:
    """Result 1: mixed training (single bios + P_train QAs), evaluated along the way."""
    em, rows = pl.cfg.emergence, []
    people = int(pl.cfg.data.get("people", 0))
    points = [("people", n, n, em.mixed_exposures) for n in em.mixed_people]
    points += [("exposures", e, people, e) for e in em.mixed_exposure_points]
    for axis, value, n, exposures in points:
        data = pl.data("single", seed, people=n) if n != people else pl.data("single", seed)
        over = {"qa_ratio": pl.cfg.mixed_qa_ratio, "exposures": _num(exposures), "evals": em.evals}
        model = pl.pretrain(data, f"emergence-mixed-n{n}-e{_num(exposures)}", seed, **over)
        rows.append(_point(pl._tag(pl.evaluate(model, data), "emergence-mixed"), "1", axis, _num(value)))
    return rows


def celebrity(pl: Planner, seed: int) -> list[Run]:
    """Result 6: the celebrity study's pair of runs at each of the minority's exposures."""
    rows = []
    for e in pl.cfg.emergence.celebrity_exposures:
        for study, run in pl.celebrity_runs(seed, exposures=_num(e)):
            rows.append(_point(pl._tag(run, f"emergence-{study}"), "6", "exposures", _num(e)))
    return rows


def probing(pl: Planner, seed: int) -> list[Run]:
    """Results 4-5: Q-probe and QA accuracy of one variant against width, depth, people and exposures."""
    em, rows = pl.cfg.emergence, []
    people = int(pl.cfg.data.get("people", 0))
    layers, heads, width = _pretrain_shape(pl) if em.probe_widths or em.probe_depths else (0, 0, 0)

    def custom(n_layer: int, n_head: int, n_embd: int) -> dict[str, Any]:
        return {"model.size": "custom", "model.n_layer": n_layer, "model.n_head": n_head, "model.n_embd": n_embd}

    # (axis, value, people, model overrides, exposures, run name); exposures of 0 is the preset's
    points: list[tuple[str, Any, int, dict, Any, str]] = [
        ("width", w, people, custom(layers, max(1, w // HEAD_DIM), w), em.probe_exposures, f"w{w}-n{people}")
        for w in em.probe_widths]
    points += [("people", n, n, {}, em.probe_exposures, f"w0-n{n}") for n in em.probe_people]
    at = em.probe_exposure_people or people
    points += [("exposures", _num(e), at, {}, e, f"w0-n{at}") for e in em.probe_exposure_points]
    depth_at = em.probe_depth_people or people
    for d in em.probe_depths:
        if d == layers:  # the preset's own model: at the same N, the people axis's run
            points.append(("depth", d, depth_at, {}, em.probe_exposures, f"w0-n{depth_at}"))
        else:
            points.append(("depth", d, depth_at, custom(d, heads, width), em.probe_exposures, f"d{d}-n{depth_at}"))
    for axis, value, n, model, exposures, label in points:
        data = pl.data(em.probe_variant, seed, people=n) if n != people else pl.data(em.probe_variant, seed)
        over: dict[str, Any] = dict(model)
        if exposures:
            over["exposures"] = _num(exposures)
        name = em.probe_variant if not over and n == people else f"emergence-{em.probe_variant}-{label}"
        model_run = pl.pretrain(data, name, seed, **over)
        qa = pl._tag(pl.evaluate(pl.finetune(model_run, data, seed), data), "emergence-qa")
        probe = pl._tag(pl.probe("q", model_run, data), "emergence-probe-q")
        readout = pl._tag(pl.readout(model_run, data), "emergence-readout")
        rows += [_point(run, "4-5", axis, value) for run in (qa, probe, readout)]
    return rows


def gbert(pl: Planner, seed: int) -> list[Run]:
    """Result 7: GBERT BIO-pretrained on gbert_variant bios for each masked-LM budget, then the
    study's finetune; its memorisation is read before finetuning."""
    rows = []
    variant = pl.cfg.gbert_variant
    data = pl.data(variant, seed)
    method = pl.cfg.finetune.get("method", "finetune")
    for e in pl.cfg.emergence.gbert_exposures:
        mlm = {"model.arch": "gbert", "objective": "mlm", "exposures": _num(e)}
        model = pl.pretrain(data, f"gbert-{variant}-e{_num(e)}", seed, **mlm)
        tuned = pl.finetune(model, data, seed, name=f"{model.name}-study-{method}")
        rows.append(_point(pl._tag(pl.evaluate(tuned, data), "emergence-gbert"), "7", "exposures", _num(e)))
        rows.append(_point(pl._tag(pl.evaluate(model, data, split="test"), "emergence-gbert-bio"), "7",
                           "exposures", _num(e)))
    return rows


def plan(pl: Planner) -> list[Run]:
    return [run for seed in pl.seeds for sweep in (mixed, celebrity, probing, gbert) for run in sweep(pl, seed)]
