"""Progress bars for long work: tqdm on a terminal, quiet in logs unless asked."""

from __future__ import annotations

import os
import sys


def progress(iterable=None, total=None, desc=None, disable=None, **kwargs):
    from tqdm.auto import tqdm

    if disable is None:
        disable = not sys.stderr.isatty() and not os.environ.get("KNOWLAB_PROGRESS")
    return tqdm(iterable, total=total, desc=desc, disable=disable, dynamic_ncols=True, leave=False, **kwargs)
