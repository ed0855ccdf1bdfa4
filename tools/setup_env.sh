#!/usr/bin/env bash
# Create or reuse .venv/ with the full tested OpenMMLab stack and mmmobilemamba (editable).
# Idempotent: a second run only verifies. See docs/get_started.md for why each pin exists.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
cd "$ROOT"

stamp="$VENV/.mmmobilemamba-installed"
req_hash="$(cat requirements/*.txt setup.py tools/setup_env.sh | sha256sum | cut -c1-16)"

mmcv_ops_ok() {
    "$VENV/bin/python" - <<'PY' 2>/dev/null
import torch
from mmcv.ops import nms, RoIAlign
boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.], [50., 50., 60., 60.]])
_, keep = nms(boxes, torch.tensor([0.9, 0.8, 0.7]), 0.5)
assert keep.tolist() == [0, 2], keep
out = RoIAlign((2, 2), 1.0, 0)(torch.ones(1, 1, 8, 8), torch.tensor([[0., 0., 0., 4., 4.]]))
assert out.shape == (1, 1, 2, 2)
PY
}

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$req_hash" ] && mmcv_ops_ok; then
    echo "[setup_env] .venv is up to date"
    exit 0
fi

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip)
"${PIP[@]}" install -q -r requirements/build.txt
"${PIP[@]}" install -q -r requirements/torch.txt
# mmcv's setup.py imports torch and pkg_resources, so everything it needs comes first.
"${PIP[@]}" install -q 'numpy>=1.24,<2' 'opencv-python>=4.8,<4.11' mmengine==0.10.7 \
    addict packaging Pillow pyyaml yapf

if ! mmcv_ops_ok; then
    wrap="$ROOT/tools/cxx20"   # torch >= 2.14 needs C++20; mmcv forces -std=c++17
    "${PIP[@]}" uninstall -y -q mmcv mmcv-lite 2>/dev/null || true
    cache_flag=()
    # A cached wheel without ops (built in isolation, or by another torch) must not be reused.
    [ -n "${MMCV_REBUILD:-}" ] && cache_flag=(--no-cache-dir)
    echo "[setup_env] building mmcv 2.1.0 with its ops (10-25 min on 2 cores)"
    CXX="$wrap" MMCV_WITH_OPS=1 FORCE_CUDA="${FORCE_CUDA:-0}" MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
        "${PIP[@]}" install -q --no-build-isolation "${cache_flag[@]}" mmcv==2.1.0
    if ! mmcv_ops_ok; then
        echo "[setup_env] installed mmcv lacks its compiled ops; rebuilding without pip's cache"
        "${PIP[@]}" uninstall -y -q mmcv
        CXX="$wrap" MMCV_WITH_OPS=1 FORCE_CUDA="${FORCE_CUDA:-0}" MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
            "${PIP[@]}" install -q --no-build-isolation --no-cache-dir mmcv==2.1.0
        mmcv_ops_ok || { echo "[setup_env] ERROR: mmcv ops still missing" >&2; exit 1; }
    fi
fi

"${PIP[@]}" install -q -r requirements/runtime.txt -r requirements/tests.txt
"${PIP[@]}" install -q --no-build-isolation --no-deps -e .
"$VENV/bin/python" -c "import mmdet, mmseg, mmpretrain, mmmobilemamba; print('[setup_env] ok:', mmdet.__version__, mmseg.__version__, mmpretrain.__version__)"
echo "$req_hash" > "$stamp"
