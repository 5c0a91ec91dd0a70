"""Progress for long work: a tqdm bar on a terminal, a plain line every few minutes in a log."""

from __future__ import annotations

import os
import sys
import time

LOG_EVERY_S = 300.0  # also how often a study reports each running run (study/runner.py)


class _LogLines:
    """tqdm's stream when stderr is not a terminal. Carriage-return redraws would pile up in a
    file as one unreadable line; instead a bar's state becomes a line of its own, at most one
    every `every` seconds and none in the first `every`, so short work stays silent."""

    def __init__(self, stream, every: float):
        self.stream, self.every, self.last = stream, every, time.monotonic()

    def write(self, text: str) -> None:
        text = text.replace("\r", "").strip()
        now = time.monotonic()
        if text and now - self.last >= self.every:
            self.stream.write(text + "\n")
            self.stream.flush()
            self.last = now

    def flush(self) -> None:
        self.stream.flush()


def progress(iterable=None, total=None, desc=None, disable=None, **kwargs):
    """`disable=True` silences it; otherwise a bar on a terminal (or with KNOWLAB_PROGRESS set)
    and log lines elsewhere."""
    from tqdm.auto import tqdm

    if disable:
        return tqdm(iterable, total=total, desc=desc, disable=True, **kwargs)
    if sys.stderr.isatty() or os.environ.get("KNOWLAB_PROGRESS"):
        return tqdm(iterable, total=total, desc=desc, dynamic_ncols=True, leave=False, **kwargs)
    return tqdm(iterable, total=total, desc=desc, file=_LogLines(sys.stderr, LOG_EVERY_S), ascii=True,
                ncols=100, mininterval=min(30.0, LOG_EVERY_S), leave=False, **kwargs)
