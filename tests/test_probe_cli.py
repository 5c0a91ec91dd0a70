"""`knowlab probe p|q`: outputs written atomically, heatmaps drawn, bad input is a one-line error."""

from __future__ import annotations

import json

import pytest

from knowlab.cli import main
from knowlab.probe import TASKS, load_probe_config, plots


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_dataset):
    """A run folder holding a random 1-layer model at model/, as pretraining leaves it."""
    from knowlab.config import from_dict
    from knowlab.data.dataset import Dataset
    from knowlab.models.presets import ModelConfig, build_model

    tok = Dataset(tiny_dataset).tokenizer
    model = build_model(from_dict(ModelConfig, {"size": "custom", "n_layer": 1, "n_head": 2, "n_embd": 32}),
                        len(tok), tok.eos_token_id, seed=0)
    run = tmp_path_factory.mktemp("runs") / "run"
    model.save_pretrained(run / "model")
    return run


FAST = ["--preset", "tiny", "steps=3", "max_train_eval=8", "--no-progress"]


def test_q_cli_writes_json_and_png_next_to_model(run_dir, tiny_dataset, capsys):
    assert main(["probe", "q", str(run_dir), "--data", str(tiny_dataset), *FAST]) == 0
    result = json.loads((run_dir / "q_probe.json").read_text())
    assert (run_dir / "q_probe.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result["kind"] == "q" and result["name"] == "run" and result["tasks"] == list(TASKS)
    assert set(result["accuracy"]) == set(TASKS) == set(result["baseline"])
    assert all(0.0 <= v <= 1.0 for v in result["accuracy"].values())
    assert result["config"]["steps"] == 3 and result["config"]["share_embedding_update"] is True
    assert result["positions"] == ["name_end"] and result["layer"] == 1
    assert "first b_month" in capsys.readouterr().out
    assert not list(run_dir.glob(".*.tmp"))  # nothing half-written left behind


def test_p_cli_writes_to_out(run_dir, tiny_dataset, tmp_path):
    out = tmp_path / "probe_out"
    args = ["probe", "p", str(run_dir / "model"), "--data", str(tiny_dataset), "--out", str(out), *FAST,
            "p.tasks=birth_month,company_whole", "layer=all"]
    assert main(args) == 0
    result = json.loads((out / "p_probe.json").read_text())
    assert (out / "p_probe.png").is_file()
    assert result["positions"] == [f"pos{j}" for j in range(1, 7)]
    assert all(len(v) == 6 for v in result["accuracy"].values())
    assert set(result["accuracy_by_layer"]) == {"0", "1"}
    assert result["counts"]["train_people"] + result["counts"]["test_people"] == 40


@pytest.mark.parametrize("args, message", [
    (["probe", "q", "{tmp}/nothing", "--data", "{data}"], "no model found"),
    (["probe", "q", "{run}", "--data", "{tmp}/nothing"], "no such dataset folder"),
    (["probe", "p", "{run}", "--data", "{data}", "bogus=1"], "unknown config key 'p.bogus'"),
    (["probe", "p", "{run}", "--data", "{data}", "tasks=birth_year"], "unknown task 'birth_year'"),
    (["probe", "p", "{run}", "--data", "{data}", "--preset", "huge"], "unknown probe preset 'huge'"),
    (["probe", "q", "{run}", "--data", "{data}", "steps=1", "layer=7"], "layer 7 is out of range"),
    (["probe", "q", "{data}", "--data", "{data}"], "no model found"),
    (["probe", "readout", "{tmp}/nothing", "--data", "{data}"], "no model found"),
    (["probe", "readout", "{run}", "--data", "{tmp}/nothing"], "no such dataset folder"),
    (["probe", "readout", "{run}", "--data", "{data}", "--l2", "-1"], "--l2 must be 0 or more"),
    (["probe", "readout", "{run}", "--data", "{data}", "--threads", "0"], "--threads must be at least 1"),
    (["probe", "readout", "{run}", "--data", "{data}", "--train-people", "-1"], "--train-people must be 0"),
    (["probe", "readout", "{run}", "--data", "{data}", "--train-people", "999"], "has only"),
])
def test_cli_bad_input_is_one_line_exit_2(args, message, run_dir, tiny_dataset, tmp_path, capsys):
    args = [a.format(tmp=tmp_path, run=run_dir, data=tiny_dataset) for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_readout_cli_writes_every_layer_and_place(run_dir, tiny_dataset, tmp_path, capsys):
    out = tmp_path / "readout"
    assert main(["probe", "readout", str(run_dir), "--data", str(tiny_dataset), "--out", str(out)]) == 0
    result = json.loads((out / "readout.json").read_text())
    assert result["kind"] == "readout" and result["name"] == "run" and result["places"] == ["name", "pos1"]
    assert result["layers"] == 2  # embeddings and the one block
    for place in result["places"]:
        assert set(result["accuracy"][place]) == set(result["tasks"]) == set(result["baseline"])
        assert all(len(v) == 2 and all(0.0 <= a <= 1.0 for a in v) for v in result["accuracy"][place].values())
    assert result["counts"]["train_people"] + result["counts"]["test_people"] == 40
    assert "(baseline" in capsys.readouterr().out and not list(out.glob(".*.tmp"))
    # a fixed regression sample: 5 P_train people fit, every P_test person scored
    assert main(["probe", "readout", str(run_dir), "--data", str(tiny_dataset), "--out", str(out),
                 "--train-people", "5"]) == 0
    few = json.loads((out / "readout.json").read_text())
    assert few["counts"] == {"train_people": 5, "test_people": result["counts"]["test_people"]}
    assert few["train_people_asked"] == 5


def test_readout_fit_reads_a_linear_signal_and_not_noise():
    import torch

    from knowlab.probe.readout import fit_score

    gen = torch.Generator().manual_seed(0)
    y = torch.arange(200) % 5
    signal = torch.nn.functional.one_hot(y, 5).float() * 3 + 0.1 * torch.randn(200, 5, generator=gen)
    x = torch.cat([signal, torch.randn(200, 11, generator=gen)], 1)
    assert fit_score(x[:100], y[:100], x[100:], y[100:], 5, 1e-3) == 1.0
    noise = torch.randn(200, 16, generator=gen)
    assert fit_score(noise[:100], y[:100], noise[100:], y[100:], 5, 1e-3) < 0.45


def test_presets_and_overrides():
    p = load_probe_config("p", "paper")
    q = load_probe_config("q", "paper")
    assert (p.rank, p.norm, p.batch_size, p.steps, p.share_embedding_update) == (2, "layernorm", 50, 30000, False)
    assert (q.rank, q.norm, q.batch_size, q.steps) == (16, "batchnorm", 200, 30000)
    for c in (p, q):
        o = c.optim
        assert (o.lr, o.weight_decay, o.eps, o.warmup_steps, o.schedule, o.min_lr_ratio) == (1e-3, 0.3, 1e-6, 0, "linear", 0.0)
    # a dot-key override keeps the probe's own optimiser defaults
    assert load_probe_config("q", None, None, {"optim.lr": "3e-4"}).optim.weight_decay == 0.3
    assert load_probe_config("p", "tiny", None, {"q.steps": "9"}).steps == 200


def _fake(kind: str, level: float) -> dict:
    acc = {t: ([level] * 6 if kind == "p" else level) for t in TASKS}
    return {"kind": kind, "name": f"m{level}", "tasks": list(TASKS), "accuracy": acc,
            "baseline": {t: 0.1 for t in TASKS}, "positions": [f"pos{j}" for j in range(1, 7)],
            "layer": 4, "variant": "single"}


def test_plots_for_the_study_report(tmp_path):
    fig = plots.plot_q_probe({"single": _fake("q", 0.2), "multi5+permute": _fake("q", 0.99)}, tmp_path / "q.png")
    assert len(fig.axes[0].get_yticklabels()) == 3  # baseline + two models
    plots.plot_p_probes({"single": _fake("p", 0.3), "multi5": _fake("p", 1.0), "x": _fake("p", 0.5)},
                        tmp_path / "p.png", ncols=2)
    plots.plot_p_probe(_fake("p", 0.5), tmp_path / "one.png")
    for name in ("q.png", "p.png", "one.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
