#!/usr/bin/env bash
# Downloads, here (network needed), the wheels of Python packages that scripts/gpu-check.sh needs
# and the GPU machine lacks, into the ignored folder .whl/ of this checkout; gpu-check.sh installs
# them there with pip --no-index. The GPU machine is Python 3.12 on x86-64 Linux.
#
#   bash scripts/gpu-wheels.sh NAME==VERSION ...
#
# Today nothing is needed: every package knowlab imports on the checked paths is in the machine's
# image (see /work/.library/device/KINDS.md), and without arguments this script only says so.
# --no-deps fetches none of a package's own needs: name each missing one too (a wheel's
# `unzip -p .whl/NAME-*.whl '*/METADATA' | grep ^Requires-Dist` lists them). Keep one version of
# each package in .whl/: two stop the whole install.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if [ "$#" -eq 0 ]; then
    echo "gpu-wheels: nothing to download; the GPU image has every package gpu-check.sh imports."
    echo "gpu-wheels: to bring one anyway: bash scripts/gpu-wheels.sh NAME==VERSION ..."
    exit 0
fi
mkdir -p .whl
grep -qx '/.whl/' .gitignore 2>/dev/null || echo "gpu-wheels: warning: .whl/ is not in .gitignore" >&2
platforms=()
for n in 39 35 34 31 28 27 24 17; do platforms+=(--platform "manylinux_2_${n}_x86_64"); done
"$PY" -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${platforms[@]}" --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any \
    -d .whl "$@"
ls -l .whl
