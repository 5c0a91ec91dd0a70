#!/usr/bin/env bash
# knowlab's GPU path, measured in one prepared run: training throughput and MFU against HF
# Trainer, QA evaluation speed against HF generate, and the gpu-quick science rows (augmentation,
# its model's Q-probe and readout, then mixed training at 10,000 and 30,000 people in the time
# left). scripts/gpu_check.py says
# what each step measures; docs/gpu.md how to read the results.
#
# By hand, nothing, except where a package knowlab needs is missing on the GPU machine (today none
# is: torch, transformers, tokenizers, peft, pyarrow, numpy, pyyaml, safetensors, tqdm,
# matplotlib and accelerate are all in its image). Then, once, on a machine with network, in the
# checkout: `bash scripts/gpu-wheels.sh NAME==VERSION ...`; it fills the ignored folder .whl/,
# which must travel with the checkout, and this script installs it before anything else.
#
#   bash scripts/gpu-check.sh [OUT]          on the GPU machine: about 9 minutes, no network
#   bash scripts/gpu-check.sh --smoke [OUT]  on any CPU: every step at toy scale (CI runs this)
#
# It writes OUT/gpu-check.json, OUT/gpu-check.md and OUT/gpu-check.log (OUT defaults to $OUT,
# else ./gpu-check-out), rewritten as each result comes, so a stop at any point keeps them.
# knowlab runs from this checkout (PYTHONPATH=src); nothing is installed into the Python.
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if compgen -G ".whl/*.whl" >/dev/null; then
    site="${TMPDIR:-/tmp}/knowlab-gpu-site"
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" .whl/*.whl || {
        echo "gpu-check: installing the wheels of .whl/ failed" >&2; exit 2; }
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PYTHONUNBUFFERED=1
exec "$PY" scripts/gpu_check.py "$@"
