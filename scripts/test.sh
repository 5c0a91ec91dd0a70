#!/usr/bin/env bash
# The test command of the README: installs what it needs, then runs the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
KNOWLAB_EXTRAS="test,lmeval,serve" bash scripts/setup.sh
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# Two workers (pytest-xdist): most tests are single-threaded and wait on subprocess start-up, so
# two of them at once fill a 2-core machine; KNOWLAB_TEST_WORKERS=0 runs them in this process.
exec .venv/bin/python -m pytest -q -n "${KNOWLAB_TEST_WORKERS:-2}" "$@"
