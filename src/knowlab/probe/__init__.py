"""Probing a frozen pretrained model for where it stores each attribute ([P] Section 5).

- `run_p_probe(model, data, cfg)`: P-probing, six special positions of bio entries (Figure 5).
- `run_q_probe(model, data, cfg)`: Q-probing, the end of a name query (Figure 7).
- `plots.plot_p_probe`, `plots.plot_p_probes`, `plots.plot_q_probe`: the heatmaps.
- `write_result(result, out_dir)`: `{p,q}_probe.json` and `.png`, atomically.
Configs: `PProbeConfig`, `QProbeConfig` (paper defaults), presets `configs/probe/{tiny,paper}.yaml`
via `load_probe_config(kind, preset, path, overrides)`.
"""

from knowlab.probe.p_probe import run_p_probe, special_positions
from knowlab.probe.q_probe import run_q_probe
from knowlab.probe.run import write_result
from knowlab.probe.types import TASK_LABELS, TASKS, PProbeConfig, ProbeConfig, QProbeConfig, load_probe_config

__all__ = [
    "TASKS", "TASK_LABELS", "ProbeConfig", "PProbeConfig", "QProbeConfig", "load_probe_config",
    "run_p_probe", "run_q_probe", "special_positions", "write_result",
]
