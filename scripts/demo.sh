#!/usr/bin/env bash
# The main job of the README: the tiny augmentation study (Results 2-3) on a CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec .venv/bin/knowlab study run augmentation --preset tiny --out studies/tiny "$@"
