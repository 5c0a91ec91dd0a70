#!/usr/bin/env bash
# Creates .venv (once) with the CPU build of torch and knowlab installed in editable mode.
# Idempotent: a second run only checks that everything is there.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="${KNOWLAB_EXTRAS:-test}"
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
    .venv/bin/python -m pip install -q --upgrade pip
fi
stamp=".venv/.knowlab-installed-$EXTRAS-$(sha256sum pyproject.toml | cut -c1-12)"
if [ ! -f "$stamp" ]; then
    # torch first and pinned: an unpinned torch would pull a multi-GB CUDA build.
    .venv/bin/python -m pip install -q "torch==2.13.0"
    .venv/bin/python -m pip install -q -e ".[$EXTRAS]" "torch==2.13.0"
    touch "$stamp"
fi
