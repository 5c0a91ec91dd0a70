"""Progress in a log file: plain lines at a slow rate, never carriage-return redraws."""

import io
import sys

import knowlab.progress as progress_module
from knowlab.progress import progress


def _log_of(monkeypatch, every: float, disable=None) -> str:
    log = io.StringIO()  # not a terminal
    monkeypatch.setattr(sys, "stderr", log)
    monkeypatch.delenv("KNOWLAB_PROGRESS", raising=False)
    monkeypatch.setattr(progress_module, "LOG_EVERY_S", every)
    for _ in progress(range(5), desc="pretrain", disable=disable):
        pass
    return log.getvalue()


def test_long_work_in_a_log_gets_whole_lines(monkeypatch):
    text = _log_of(monkeypatch, 0.0)
    lines = text.splitlines()
    assert "\r" not in text and lines and all(line.startswith("pretrain:") for line in lines)
    assert any("/5" in line for line in lines)


def test_short_work_and_disabled_bars_write_nothing(monkeypatch):
    assert _log_of(monkeypatch, 3600.0) == ""
    assert _log_of(monkeypatch, 0.0, disable=True) == ""
