"""Probing a frozen pretrained model for where it stores each attribute ([P] Section 5).

- `run_p_probe(model, data, cfg)`: P-probing, six special positions of bio entries (Figure 5).
- `run_q_probe(model, data, cfg)`: Q-probing, the end of a name query (Figure 7).
- `plots.plot_p_probe`, `plots.plot_p_probes`, `plots.plot_q_probe`: the heatmaps.
- `write_result(result, out_dir)`: `{p,q}_probe.json` and `.png`, atomically.
Configs: `PProbeConfig`, `QProbeConfig` (paper defaults), presets `configs/probe/{tiny,paper}.yaml`
via `load_probe_config(kind, preset, path, overrides)`.
"""

import importlib

from knowlab.probe.types import TASK_LABELS, TASKS, PProbeConfig, ProbeConfig, QProbeConfig, load_probe_config

# The probes need torch; importing them on first use keeps `knowlab` commands that never probe
# (data generation, study planning, every bad-input error) from paying torch's start-up.
_LAZY = {"run_p_probe": "p_probe", "special_positions": "p_probe", "run_q_probe": "q_probe", "write_result": "run"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"knowlab.probe.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'knowlab.probe' has no attribute '{name}'")

__all__ = [
    "TASKS", "TASK_LABELS", "ProbeConfig", "PProbeConfig", "QProbeConfig", "load_probe_config",
    "run_p_probe", "run_q_probe", "special_positions", "write_result",
]
