"""knowlab's GPU path, measured in one prepared run on a bare GPU machine (run by scripts/gpu-check.sh).

Steps, in order, each in a process of its own with its own time budget:
  train-knowlab  pretraining throughput of the paper's model (the `paper` preset: gpt2-rotary
                 12 x 768, context 512, batch 96, bf16, torch.compile): tokens/s and MFU after
                 warm-up. Goal: MFU >= 45%.
  train-hf       transformers.Trainer on the same model, batch, windows and precision; the ratio
                 knowlab / Trainer. Goal: >= 1.2x.
  eval           P_test questions per second of knowlab's batched greedy evaluator against HF
                 `generate` one question at a time (benchmarks/bench_eval.py), on the paper's
                 model, and the time that implies for the paper's 300,000 P_test QAs. Goal <= 60 s.
  augmentation   `knowlab study run augmentation --preset gpu-quick`, rows single and
                 multi5+permute+fullname (10,000 people), beside the calibration numbers.
  probing        Results 4-5 at that scale: the Q-probe (`knowlab probe q --preset gpu-quick steps=3000`) and
                 the probe-free readout (`knowlab probe readout`) of the augmentation step's
                 multi5+permute+fullname model, next to its QA test accuracy. On a CPU they stay
                 far below QA at every scale tried (docs/emergence.md); here is the next scale.
  mixed          in the time left: mixed training (`study run mixed --preset gpu-quick`) at 10,000
                 and 30,000 people side by side (Result 1 against the population size).

A step that outruns its budget is stopped, and what it had measured stays in the summary: every
step measures from files its process writes as it goes (metrics.jsonl, study folders), and the
summary, OUT/gpu-check.json and OUT/gpu-check.md, is rewritten atomically every few seconds. A
kill of the whole script therefore loses only the last few seconds.

    python scripts/gpu_check.py [--smoke] [--total SECONDS] [--only STEP,...] [--work DIR] [OUT]

`--only mixed` gives the mixed runs, which the full check usually cuts, a whole call of their own.

--smoke runs every step at toy scale on a CPU (compile off, tiny models, 40-person datasets); CI
runs it (tests/test_gpu_paths.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PEAK_BF16 = 989.5e12  # H100 / H200 SXM dense bf16, FLOP/s
PAPER_TEST_QUESTIONS = 300_000  # N = 100,000 people, half in P_test, 6 attributes each
# QA test accuracy of the gpu-quick rows from a reference script on one H100 (CALIBRATION.md).
CALIBRATION = {"single": 0.034, "multi5+permute+fullname": 0.942}
GOALS = {"mfu": 0.45, "trainer_ratio": 1.2, "eval_paper_s": 60.0}
AUG_VARIANTS = "single,multi5+permute+fullname"


@dataclass(frozen=True)
class Step:
    name: str
    title: str
    budget_s: float  # on the GPU
    smoke_budget_s: float  # on a CPU at toy scale; generous, CI machines are busy


# The GPU budgets add up to the 9 minutes of a device call with margin; `mixed` takes what is
# left. The smoke budgets only stop a hung step: the smoke checks that everything works, and a
# busy CI machine must not turn a slow step into a failure.
STEPS = (
    Step("train-knowlab", "a. pretraining throughput, knowlab (paper model)", 95, 300),
    Step("train-hf", "a. pretraining throughput, HF Trainer baseline", 45, 300),
    Step("eval", "b. QA evaluation speed", 50, 300),
    Step("augmentation", "c. augmentation study, gpu-quick (single, multi5+permute+fullname)", 280, 900),
    Step("probing", "c. Results 4-5: Q-probe and readout of the multi5+permute+fullname model", 90, 600),
    Step("mixed", "c. mixed training at 10,000 and 30,000 people (time left)", 10_000, 900),
)


# ---- small helpers ----------------------------------------------------------------------------

def write_atomic(path: Path, text: str) -> None:
    """Replace `path` whole: a reader (or a kill) never sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def read_jsonl(path: Path) -> list[dict]:
    """The complete lines of a JSONL file that may be being written (a torn last line is skipped)."""
    try:
        text = path.read_text()
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def cuda() -> bool:
    import torch

    return torch.cuda.is_available()


# ---- the children: one per step, each writing what it measures to files under WORK ----------------

def toy_model_overrides() -> list[str]:
    return ["model.size=custom", "model.n_layer=2", "model.n_head=2", "model.n_embd=32", "model.context=64"]


def train_config(smoke: bool, steps: int):
    """The paper preset as the issue fixes it (bf16, compile, batch 96); toy-sized in smoke mode."""
    from knowlab.train.cli import load_pretrain_config

    common = [f"steps={steps}", "checkpoint_every=0", "precision=bf16", "optim.warmup_steps=10"]
    if smoke:
        return load_pretrain_config("paper", overrides=[*common, *toy_model_overrides(), "batch=8", "log_every=2",
                                                        "compile=false", "device=cpu", "threads=1"])
    return load_pretrain_config("paper", overrides=[*common, "batch=96", "log_every=10", "compile=true", "device=cuda"])


def dataset(work: Path, smoke: bool) -> Path:
    """A bioS single dataset shared by the speed steps (made once, by whichever step runs first)."""
    out = work / "data"
    if not out.is_dir():
        sys.path.insert(0, str(REPO / "benchmarks"))
        import bench_eval

        people, vocab = (40, 600) if smoke else (2000, 8192)
        bench_eval.generate(people, work / "gen", vocab_size=vocab)
        os.replace(work / "gen" / "ds", out)
    return out


def flops_per_token(cfg, vocab: int) -> tuple[int, float]:
    """(parameters, training FLOPs per token): 6 x params + 12 x layers x width x context."""
    import torch

    from knowlab.models.presets import build_model, count_parameters

    with torch.device("meta"):
        params = count_parameters(build_model(cfg.model, vocab, 0), non_embedding=False)
    n_layer, _, width = cfg.model.shape()
    return params, 6 * params + 12 * n_layer * width * cfg.model.context


def child_train_knowlab(work: Path, smoke: bool) -> None:
    import torch

    from knowlab.config import to_dict
    from knowlab.data.dataset import Dataset
    from knowlab.train.pretrain import pretrain

    data = dataset(work, smoke)
    cfg = train_config(smoke, 12 if smoke else 300)
    vocab = len(Dataset(data).tokenizer)
    params, fpt = flops_per_token(cfg, vocab)
    info = {"config": to_dict(cfg), "vocab": vocab, "params": params, "flops_per_token": fpt,
            "warmup_steps": 4 if smoke else 60}
    write_atomic(work / "train-knowlab.json", json.dumps(info))
    pretrain(cfg, data, work / "knowlab-run", resume="never", show_progress=False)
    if torch.cuda.is_available():
        info["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        write_atomic(work / "train-knowlab.json", json.dumps(info))


def child_train_hf(work: Path, smoke: bool) -> None:
    import torch
    from transformers import TrainerCallback

    sys.path.insert(0, str(REPO / "benchmarks"))
    import bench_train

    data = dataset(work, smoke)
    steps, every = (8, 2) if smoke else (100, 10)
    cfg = train_config(smoke, steps)
    marks = work / "train-hf.jsonl"
    marks.unlink(missing_ok=True)

    class Mark(TrainerCallback):
        """Appends (step, time) every few steps, synced, so a cut run still has its rate."""

        def on_step_end(self, args, state, control, **kw):
            if state.global_step % every == 0:
                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                with open(marks, "a") as fh:
                    fh.write(json.dumps({"step": state.global_step, "t": time.perf_counter()}) + "\n")

    write_atomic(work / "train-hf.json", json.dumps({"steps": steps, "warmup_steps": 2 if smoke else 20,
                                                     "batch": cfg.batch, "context": cfg.model.context}))
    bench_train.hf_trainer(cfg, data, work / "hf-run", skip=every, callbacks=[Mark()])


def child_eval(work: Path, smoke: bool) -> None:
    import torch

    from knowlab.data.dataset import Dataset

    sys.path.insert(0, str(REPO / "benchmarks"))
    import bench_eval

    ds = Dataset(dataset(work, smoke))
    if smoke:
        model = bench_eval.fresh_model(ds, size="custom", n_layer=2, n_head=2, n_embd=32)
        questions, hf_questions, every = 40, 5, 5
    else:
        model = bench_eval.fresh_model(ds, size="small", device=torch.device("cuda"))
        questions, hf_questions, every = 0, 100, 10
    out = work / "eval.json"
    model_name = "gpt2-rotary 12x768 (random init)" if not smoke else "gpt2-rotary 2x32 (random init)"
    bench_eval.measure(model, ds, questions, hf_questions,
                       report=lambda r: write_atomic(out, json.dumps({**r, "model": model_name})),
                       hf_report_every=every)


def study_argv(study: str, folder: Path, smoke: bool, extra: list[str], parallel: int = 1) -> list[str]:
    preset = "tiny" if smoke else "gpu-quick"
    toy = ["data.people=40", "data.vocab_size=600", "pretrain.steps=6", "pretrain.checkpoint_every=0",
           "pretrain.log_every=2", "finetune.steps=3", "finetune.eval_every=0"] if smoke else []
    return [sys.executable, "-m", "knowlab.cli", "study", "run", study, "--preset", preset, "--out", str(folder),
            "--parallel", str(parallel), *toy, *extra]


def run_studies(work: Path, jobs: dict[str, list[str]]) -> None:
    """Run knowlab commands (studies, probes) side by side, each logging to WORK/<name>.log."""
    procs = []
    for name, argv in jobs.items():
        log = open(work / f"{name}.log", "w")
        procs.append((name, subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT), log))
    failed = []
    for name, proc, log in procs:
        if proc.wait() != 0:
            failed.append(name)
        log.close()
    if failed:
        for name in failed:
            print(f"{name} failed; its log ends:\n" + "\n".join(
                (work / f"{name}.log").read_text(errors="replace").splitlines()[-15:]), file=sys.stderr)
        raise SystemExit(1)


def child_augmentation(work: Path, smoke: bool) -> None:
    # Two runs side by side: on the GPU the two models share it; on a CPU the two cores.
    argv = study_argv("augmentation", work / "study-aug", smoke, [f"augmentation_variants={AUG_VARIANTS}"], parallel=2)
    run_studies(work, {"study-aug": argv})


PROBED = "multi5+permute+fullname"


def study_model(folder: Path, variant: str) -> tuple[Path, Path] | None:
    """(model folder, dataset folder) of a study's finished pretraining of `variant`."""
    plan = read_json(folder / "study.json") or {}
    for r in plan.get("runs", []):
        out = folder / r["output"][2:]
        if r["kind"] == "pretrain" and r["tags"].get("variant") == variant and \
                out.with_name(out.name + ".done.json").is_file():
            data = r["argv"][r["argv"].index("--data") + 1]
            return out, folder / data[2:]
    return None


def child_probing(work: Path, smoke: bool) -> None:
    found = study_model(work / "study-aug", PROBED)
    if found is None:
        raise SystemExit(f"no finished {PROBED} pretraining in {work / 'study-aug'}: the augmentation step must run first")
    model, data = found
    cli = [sys.executable, "-m", "knowlab.cli", "probe"]
    # 3,000 steps of 200 names: the paper's 120 passes over each training person (5,000 here), in
    # the minute or so the steps before usually leave; the preset's 4,000 may not fit.
    steps = ["steps=5", "max_train_eval=8"] if smoke else ["steps=3000"]
    jobs = {"probe-q": [*cli, "q", str(model), "--data", str(data), "--out", str(work / "probe-q"),
                        "--preset", "tiny" if smoke else "gpu-quick", "--no-progress", *steps],
            # CPU threads: the readout runs its frozen forwards on the CPU beside the probe's GPU work
            "probe-readout": [*cli, "readout", str(model), "--data", str(data), "--out", str(work / "probe-readout"),
                              "--threads", "1" if smoke else str(max(1, (os.cpu_count() or 2) - 2))]}
    run_studies(work, jobs)


def mixed_points(smoke: bool) -> dict[str, int]:
    return {"study-mixed-a": 40, "study-mixed-b": 80} if smoke else {"study-mixed-a": 10_000, "study-mixed-b": 30_000}


def child_mixed(work: Path, smoke: bool) -> None:
    jobs = {}
    for name, people in mixed_points(smoke).items():
        extra = ["mixed_eval_every=3"] if smoke else []
        argv = study_argv("mixed", work / name, smoke, extra)
        # data.people after the toy overrides: the later key wins.
        jobs[name] = [*argv, f"data.people={people}"]
    run_studies(work, jobs)


CHILDREN: dict[str, Callable[[Path, bool], None]] = {
    "train-knowlab": child_train_knowlab, "train-hf": child_train_hf, "eval": child_eval,
    "augmentation": child_augmentation, "probing": child_probing, "mixed": child_mixed,
}


# ---- reading what a step measured (called while it runs and after it ends) -----------------------

def rate_after(points: list[tuple[int, float]], warm: int, tokens_per_step: int) -> dict[str, Any]:
    """tokens/s between the first point at or past step `warm` and the last point."""
    if not points:
        return {}
    after = [p for p in points if p[0] >= warm]
    out: dict[str, Any] = {"steps_done": points[-1][0]}
    if len(after) >= 2 and after[-1][1] > after[0][1]:
        (s0, t0), (s1, t1) = after[0], after[-1]
        out.update(measured_steps=s1 - s0, tokens_per_s=round((s1 - s0) * tokens_per_step / (t1 - t0), 1))
    return out


def collect_train_knowlab(work: Path, summary: dict) -> dict:
    info = read_json(work / "train-knowlab.json")
    if not info:
        return {}
    cfg = info["config"]
    tokens_per_step = cfg["batch"] * cfg["model"]["context"]
    lines = [r for r in read_jsonl(work / "knowlab-run" / "metrics.jsonl") if "loss" in r]
    # elapsed counts training time only (evaluation and checkpoint pauses are excluded).
    res = rate_after([(r["step"], r["elapsed"]) for r in lines], info["warmup_steps"], tokens_per_step)
    res.update(model=f"{cfg['model']['arch']} {cfg['model']['size']}", batch=cfg["batch"],
               context=cfg["model"]["context"], precision=cfg["precision"], compile=cfg["compile"],
               params=info["params"], vocab=info["vocab"], flops_per_token=info["flops_per_token"],
               warmup_steps=info["warmup_steps"])
    if lines:
        res["first_log_elapsed_s"] = lines[0]["elapsed"]  # includes compilation
        res["last_loss"] = lines[-1]["loss"]
    if "peak_memory_gib" in info:
        res["peak_memory_gib"] = info["peak_memory_gib"]
    if "tokens_per_s" in res:
        res["mfu"] = round(res["tokens_per_s"] * info["flops_per_token"] / PEAK_BF16, 4)
    return res


def collect_train_hf(work: Path, summary: dict) -> dict:
    info = read_json(work / "train-hf.json")
    if not info:
        return {}
    marks = read_jsonl(work / "train-hf.jsonl")
    res = rate_after([(m["step"], m["t"]) for m in marks], info["warmup_steps"], info["batch"] * info["context"])
    res.update(batch=info["batch"], context=info["context"], warmup_steps=info["warmup_steps"])
    ours = summary["steps"].get("train-knowlab", {}).get("result", {})
    if "tokens_per_s" in res:
        if "flops_per_token" in ours:
            res["mfu"] = round(res["tokens_per_s"] * ours["flops_per_token"] / PEAK_BF16, 4)
        if ours.get("tokens_per_s"):
            res["knowlab_over_trainer"] = round(ours["tokens_per_s"] / res["tokens_per_s"], 3)
    return res


def collect_eval(work: Path, summary: dict) -> dict:
    res = read_json(work / "eval.json") or {}
    if res.get("knowlab_answers_per_s"):
        res["paper_test_questions"] = PAPER_TEST_QUESTIONS
        res["paper_test_s"] = round(PAPER_TEST_QUESTIONS / res["knowlab_answers_per_s"], 1)
    return res


def collect_study(folder: Path) -> dict:
    """Every run of a study folder: done or not, its time, pretraining progress and throughput,
    and the QA accuracies of finished evaluations (read straight from the run folders)."""
    plan = read_json(folder / "study.json")
    if not plan:
        return {}
    runs = []
    for r in plan.get("runs", []):
        out = folder / r["output"][2:]
        done = read_json(out.with_name(out.name + ".done.json"))
        entry: dict[str, Any] = {"kind": r["kind"], "name": r["name"], "study": r["tags"].get("study"),
                                 "variant": r["tags"].get("variant"), "done": bool(done)}
        if done:
            entry["seconds"] = done.get("seconds")
        if r["kind"] == "pretrain":
            lines = read_jsonl(out / "metrics.jsonl")
            train = [x for x in lines if "loss" in x]
            if train:
                entry.update(step=train[-1]["step"], loss=train[-1]["loss"],
                             tokens_per_s=sorted(x["tokens_per_s"] for x in train[-5:])[len(train[-5:]) // 2])
            curve = [{"step": x["step"], "qa_exact.test": x["qa_exact.test"]} for x in lines if "qa_exact.test" in x]
            if curve:
                entry["qa_test_curve"] = curve
        if r["kind"] == "eval":
            result = read_json(out)
            if result:
                for split, m in result.get("splits", {}).items():
                    entry[f"qa_{split}"] = m["exact"]["mean"]
        runs.append(entry)
    return {"folder": str(folder), "runs": runs}


def collect_augmentation(work: Path, summary: dict) -> dict:
    study = collect_study(work / "study-aug")
    rows: dict[str, dict] = {}
    for r in study.get("runs", []):
        v = r.get("variant")
        if r["kind"] == "eval" and v:
            row = rows.setdefault(v, {"calibration_qa_test": CALIBRATION.get(v)})
            if r["study"] == "augmentation" and "qa_test" in r:
                row.update(qa_test=r["qa_test"], qa_train=r.get("qa_train"))
            elif r["study"] == "augmentation-pretrained" and "qa_test" in r:
                row["pretrained_only_qa_test"] = r["qa_test"]
        if r["kind"] == "pretrain" and v and "tokens_per_s" in r:
            rows.setdefault(v, {"calibration_qa_test": CALIBRATION.get(v)}).update(
                pretrain_step=r["step"], pretrain_tokens_per_s=r["tokens_per_s"])
    return {"rows": rows, **study} if study else {}


def collect_probing(work: Path, summary: dict) -> dict:
    """The Q-probe's mean P_test accuracy (%) over its tasks with the majority baseline, and the
    readout at the name's last layer: the emergence report's columns (report/emergence.py), so
    they sit next to the CPU sweep; and the QA test accuracy of the same model."""
    from knowlab.report.emergence import last_layer_mean, q_probe_mean

    res: dict[str, Any] = {"variant": PROBED}
    rows = summary["steps"].get("augmentation", {}).get("result", {}).get("rows", {})
    if rows.get(PROBED, {}).get("qa_test") is not None:
        res["qa_test"] = round(100 * rows[PROBED]["qa_test"], 1)
    q = read_json(work / "probe-q" / "q_probe.json")
    if q:
        res["q_probe"] = round(q_probe_mean(q), 1)
        res["q_probe_baseline"] = round(q_probe_mean(q, "baseline"), 1)
        res["q_probe_by_task"] = {t: round(100 * a, 1) for t, a in q["accuracy"].items()}
    readout = read_json(work / "probe-readout" / "readout.json")
    if readout:
        acc, base = last_layer_mean(readout)
        res.update(readout_name_last_layer=round(acc, 1), readout_baseline=round(base, 1))
    return res


def collect_mixed(work: Path, summary: dict) -> dict:
    smoke = summary.get("smoke", False)
    points = {}
    for name, people in mixed_points(smoke).items():
        study = collect_study(work / name)
        point: dict[str, Any] = {"people": people}
        for r in study.get("runs", []):
            if r["kind"] == "pretrain":
                point.update({k: r[k] for k in ("step", "tokens_per_s", "qa_test_curve", "done") if k in r})
            if r["kind"] == "eval" and "qa_test" in r:
                point.update(qa_test=r["qa_test"], qa_train=r.get("qa_train"))
        points[str(people)] = point
    return {"points": points}


COLLECT: dict[str, Callable[[Path, dict], dict]] = {
    "train-knowlab": collect_train_knowlab, "train-hf": collect_train_hf, "eval": collect_eval,
    "augmentation": collect_augmentation, "probing": collect_probing, "mixed": collect_mixed,
}


# ---- the summary ------------------------------------------------------------------------------

def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def num(x: float | None, fmt: str = ",.0f") -> str:
    return "-" if x is None else format(x, fmt)


def headline(name: str, res: dict, smoke: bool) -> tuple[str, str]:
    """(result, goal) cells of the summary table for one step."""
    if name == "train-knowlab":
        return (f"{num(res.get('tokens_per_s'))} tokens/s, MFU {pct(res.get('mfu'))}",
                f"MFU >= {pct(GOALS['mfu'])}")
    if name == "train-hf":
        ratio = res.get("knowlab_over_trainer")
        return (f"Trainer {num(res.get('tokens_per_s'))} tokens/s; knowlab {num(ratio, '.2f')}x",
                f">= {GOALS['trainer_ratio']}x Trainer")
    if name == "eval":
        return (f"{num(res.get('knowlab_answers_per_s'))} q/s vs HF {num(res.get('hf_answers_per_s'), ',.1f')} q/s "
                f"({num(res.get('speedup'), ',.1f')}x); 300k in {num(res.get('paper_test_s'), ',.1f')} s",
                f"300k P_test QAs <= {GOALS['eval_paper_s']:.0f} s")
    if name == "augmentation":
        cells = [f"{v}: {pct(r.get('qa_test'))} (calib. {pct(r.get('calibration_qa_test'))})"
                 for v, r in res.get("rows", {}).items()]
        return ("; ".join(cells) or "-", "near 3.4% / 94.2% (H100 calibration)")
    if name == "probing":
        return (f"Q-probe {num(res.get('q_probe'), '.1f')}% (baseline {num(res.get('q_probe_baseline'), '.1f')}%), "
                f"readout {num(res.get('readout_name_last_layer'), '.1f')}%, QA {num(res.get('qa_test'), '.1f')}%",
                "Result 5: Q-probe within 15 points of QA")
    if name == "mixed":
        cells = []
        for people, p in res.get("points", {}).items():
            last = (p.get("qa_test_curve") or [{}])[-1]
            acc = p.get("qa_test", last.get("qa_exact.test"))
            where = "final" if "qa_test" in p else f"step {last.get('step', p.get('step', 0))}"
            cells.append(f"N={int(people):,}: {pct(acc)} ({where})")
        return ("; ".join(cells) or "-", "Result 1: QA test accuracy against N")
    return "-", "-"


def render_md(summary: dict) -> str:
    smoke = summary["smoke"]
    m = summary["machine"]
    lines = [f"# knowlab GPU check{' (CPU smoke run: toy scale, numbers mean nothing)' if smoke else ''}", "",
             f"Started {summary['started']} UTC; {summary['elapsed_s']:.0f} s of {summary['total_s']:.0f} s; "
             f"{'finished' if summary['finished'] else 'in progress or stopped'}.", "",
             f"Machine: {m.get('gpu') or 'no GPU'}; torch {m.get('torch')}, transformers {m.get('transformers')}, "
             f"Python {m.get('python')}; {m.get('cpus')} CPUs.", "",
             "| step | status | seconds (budget) | result | goal |", "| --- | --- | --- | --- | --- |"]
    for step in STEPS:
        s = summary["steps"].get(step.name, {})
        res, goal = headline(step.name, s.get("result", {}), smoke)
        budget = s.get("budget_s")
        lines.append(f"| {step.name} | {s.get('status', 'pending')} | {num(s.get('seconds'))} "
                     f"({num(budget)}) | {res} | {goal} |")
    lines += ["", "Status: ok (finished), cut (stopped at its budget; the numbers are what it had measured), "
              "failed (see error), skipped (no time left).", ""]
    for step in STEPS:
        s = summary["steps"].get(step.name)
        if not s:
            continue
        lines += [f"## {step.name}: {step.title}", ""]
        if s.get("error"):
            lines += ["Error (last lines of its log):", "", "```", s["error"], "```", ""]
        lines += ["```json", json.dumps(s.get("result", {}), indent=1)[:6000], "```", ""]
    return "\n".join(lines)


class Summary:
    def __init__(self, out: Path, smoke: bool, total: float):
        self.out, self.t0 = out, time.time()
        self.data: dict[str, Any] = {"smoke": smoke, "started": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
                                     "total_s": total, "elapsed_s": 0.0, "finished": False,
                                     "goals": GOALS, "machine": machine(), "steps": {}}

    def step(self, name: str) -> dict:
        return self.data["steps"].setdefault(name, {})

    def write(self) -> None:
        self.data["elapsed_s"] = round(time.time() - self.t0, 1)
        write_atomic(self.out / "gpu-check.json", json.dumps(self.data, indent=1))
        write_atomic(self.out / "gpu-check.md", render_md(self.data))


def machine() -> dict:
    info: dict[str, Any] = {"python": platform.python_version(), "cpus": os.cpu_count(), "host": platform.node()}
    try:
        import torch
        import transformers

        info.update(torch=torch.__version__, transformers=transformers.__version__, cuda=torch.version.cuda)
        if torch.cuda.is_available():
            p = torch.cuda.get_device_properties(0)
            info.update(gpu=p.name, gpu_memory_gib=round(p.total_memory / 2**30, 1), gpus=torch.cuda.device_count())
    except ImportError as exc:
        info["import_error"] = str(exc)
    info["c_compiler"] = shutil.which("gcc") or shutil.which("cc") or None
    return info


def missing_packages() -> list[str]:
    """Packages knowlab imports on these paths that this Python lacks (scripts/gpu-wheels.sh brings them)."""
    import importlib.util

    needed = ["torch", "transformers", "tokenizers", "peft", "pyarrow", "numpy", "yaml", "safetensors", "tqdm",
              "matplotlib", "accelerate"]
    return [n for n in needed if importlib.util.find_spec(n) is None]


# ---- the parent: steps one after another, each cut at its budget -----------------------------------

def log_tail(path: Path, n: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def stop(proc: subprocess.Popen) -> None:
    """End the step's whole process group (its study subprocesses too), politely first."""
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def run_step(step: Step, work: Path, summary: Summary, deadline: float, smoke: bool, poll: float) -> None:
    s = summary.step(step.name)
    left = deadline - time.time()
    budget = min(step.smoke_budget_s if smoke else step.budget_s, left)
    s["budget_s"] = round(budget, 1)
    if budget < (3 if smoke else 20):
        s.update(status="skipped", reason=f"{left:.0f} s left of the total")
        summary.write()
        return
    log = work / f"{step.name}.log"
    argv = [sys.executable, str(Path(__file__).resolve()), "--child", step.name, "--work", str(work)]
    if smoke:
        argv.append("--smoke")
    start = time.time()
    with open(log, "w") as fh:
        proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    s.update(status="running")
    cut = False
    while True:
        try:
            rc: int | None = proc.wait(timeout=poll)
        except subprocess.TimeoutExpired:
            rc = None
        if rc is None and time.time() - start > budget:
            stop(proc)
            cut, rc = True, proc.returncode
        s["seconds"] = round(time.time() - start, 1)
        try:
            s["result"] = COLLECT[step.name](work, summary.data)
        except Exception as exc:  # a half-written file must never stop the check
            s["collect_error"] = f"{type(exc).__name__}: {exc}"
        if rc is not None:
            break
        summary.write()
    if cut:
        s["status"] = "cut"
    elif rc == 0:
        s["status"] = "ok"
    else:
        s.update(status="failed", error=log_tail(log))
    summary.write()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?", help="folder for gpu-check.json/.md/.log (default $OUT, else ./gpu-check-out)")
    ap.add_argument("--smoke", action="store_true", help="every step at toy scale on a CPU")
    ap.add_argument("--total", type=float, help="seconds for all steps (default 530 on a GPU, 2400 smoke)")
    ap.add_argument("--work", help="scratch folder (default: a fresh one under /tmp)")
    ap.add_argument("--only", help="comma-separated steps to run (default: all)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child:
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        CHILDREN[args.child](Path(args.work), args.smoke)
        return 0

    out = Path(args.out or os.environ.get("OUT") or "gpu-check-out").resolve()
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work) if args.work else Path(f"/tmp/knowlab-gpu-check-{int(time.time())}")
    work.mkdir(parents=True, exist_ok=True)
    total = args.total or (2400.0 if args.smoke else 530.0)
    deadline = time.time() + total
    summary = Summary(out, args.smoke, total)
    summary.data["work"] = str(work)
    only = set(args.only.split(",")) if args.only else None
    missing = missing_packages()
    if missing:
        summary.data["error"] = f"missing Python packages: {', '.join(missing)}; run scripts/gpu-wheels.sh here first"
    elif not args.smoke and not cuda():
        summary.data["error"] = "no CUDA device; run with --smoke on a CPU"
    if "error" in summary.data:
        summary.write()
        print(f"gpu-check: {summary.data['error']}", file=sys.stderr)
        return 2
    summary.write()
    for step in STEPS:
        if only and step.name not in only:
            continue
        print(f"gpu-check: {step.name} ...", file=sys.stderr, flush=True)
        run_step(step, work, summary, deadline, args.smoke, poll=1.0 if args.smoke else 5.0)
        s = summary.step(step.name)
        print(f"gpu-check: {step.name} {s['status']} in {s.get('seconds', 0):.0f} s: "
              f"{headline(step.name, s.get('result', {}), args.smoke)[0]}", file=sys.stderr, flush=True)
        write_atomic(out / "gpu-check.log", "\n\n".join(
            f"==== {p.stem} ====\n{log_tail(p, 80)}" for p in sorted(work.glob("*.log"))) + "\n")
    summary.data["finished"] = True
    summary.write()
    print(f"gpu-check: wrote {out / 'gpu-check.json'} and {out / 'gpu-check.md'}", file=sys.stderr)
    failed = [n for n, s in summary.data["steps"].items() if s.get("status") == "failed"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
