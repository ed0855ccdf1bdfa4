#!/usr/bin/env bash
# Fill .whl/ (git-ignored) with what the lent GPU machines lack for benchmarks/gpu.sh and
# benchmarks/ddp.sh: the OpenMMLab stack as wheels for their Python 3.12 (mmcv as mmcv-lite,
# plus the mmcv 2.1.0 sdist that tools/build_cuda_wheels.sh compiles there with CUDA ops) and
# the small pure-Python packages those import that the machines' image does not hold. Run it
# here, where PyPI is reachable, then carry .whl along with the call (about 8 MiB).
#
#   bash benchmarks/fetch_gpu_wheels.sh [DIR]   # default .whl; after make setup
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-.whl}
PY=${PYTHON:-.venv/bin/python}  # make setup's: reading mmcv's sdist imports torch
mkdir -p "$DIR"
WHEELS=(mmengine==0.10.7 mmcv-lite==2.1.0 mmpretrain==1.2.0 mmdet==3.3.0 mmsegmentation==1.2.2
        addict yapf termcolor model-index mat4py ordered-set 'importlib_metadata<8'
        platformdirs tomli)
for spec in "${WHEELS[@]}"; do
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d "$DIR" "$spec"
done
"$PY" -m pip download -q --no-deps --no-binary :all: --no-build-isolation -d "$DIR" mmcv==2.1.0
ls "$DIR"
