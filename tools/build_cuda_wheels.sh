#!/usr/bin/env bash
# Build (once) and install the CUDA extensions for the local card: mmcv 2.1.0 with its CUDA ops
# and, optionally, mamba-ssm. Wheels are cached per torch/CUDA/arch, so a second run on the same
# stack installs in seconds; copy the cache folder to the next machine to skip the build there.
#
#   bash tools/build_cuda_wheels.sh [--sdist-dir DIR] [--cache DIR] [--target DIR] [mmcv] [mamba-ssm]
#
# --sdist-dir: offline, take the sdists (mmcv-2.1.0.tar.gz, mamba_ssm-*.tar.gz) from DIR instead
#   of PyPI. --target: install into DIR (pip --target) instead of the active environment.
# Needs torch (CUDA build), nvcc of the same CUDA major version, ninja, setuptools<82, wheel.
# PYTHON (default python3) is the interpreter that builds and receives the wheels.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY=${PYTHON:-python3}
MMCV_VERSION=2.1.0
MAMBA_VERSION=2.3.2.post1
cache="${XDG_CACHE_HOME:-$HOME/.cache}/mmmobilemamba/wheels"
sdist_dir="" target=() packages=()
while [ $# -gt 0 ]; do
    case "$1" in
    --sdist-dir) sdist_dir=$(cd "$2" && pwd); shift 2 ;;
    --cache) cache=$2; shift 2 ;;
    --target) target=(--target "$2"); shift 2 ;;
    mmcv|mamba-ssm) packages+=("$1"); shift ;;
    *) echo "build_cuda_wheels: unknown argument '$1' (packages: mmcv, mamba-ssm)" >&2; exit 2 ;;
    esac
done
[ ${#packages[@]} -gt 0 ] || packages=(mmcv)

read -r torch_v torch_cuda arch < <("$PY" - <<'PY'
import sys
try:
    import torch
except ImportError:
    raise SystemExit(f'build_cuda_wheels: {sys.executable} has no torch; install torch (CUDA '
                     'build) first, or point PYTHON at the interpreter that has it')
if torch.version.cuda is None or not torch.cuda.is_available():
    raise SystemExit('build_cuda_wheels: needs a CUDA build of torch and a visible GPU '
                     f'(torch {torch.__version__}, cuda {torch.version.cuda}); on CPU machines '
                     'tools/setup_env.sh builds mmcv with CPU ops')
major, minor = torch.cuda.get_device_capability()
print(torch.__version__, torch.version.cuda, f'{major}{minor}')
PY
)
nvcc_cuda=$(nvcc --version | sed -n 's/.*release \([0-9.]*\),.*/\1/p')
if [ "${nvcc_cuda%%.*}" != "${torch_cuda%%.*}" ]; then
    echo "build_cuda_wheels: nvcc is CUDA $nvcc_cuda but torch was built with CUDA $torch_cuda;" \
         "install the matching toolkit or torch build (their major versions must agree)" >&2
    exit 1
fi
dir="$cache/torch${torch_v}-sm${arch}"
mkdir -p "$dir"
echo "[build_cuda_wheels] torch $torch_v, CUDA $torch_cuda (nvcc $nvcc_cuda), sm_$arch, cache $dir"

sdist() {  # sdist() NAME VERSION -> path of the source archive
    local name=$1 version=$2 found
    if [ -n "$sdist_dir" ]; then
        found=$(ls "$sdist_dir"/"${name//-/_}"-"$version".tar.gz "$sdist_dir/$name-$version.tar.gz" \
            2>/dev/null | head -1)
        [ -n "$found" ] || { echo "build_cuda_wheels: no $name-$version sdist in $sdist_dir" >&2; exit 1; }
    else
        "$PY" -m pip download -q --no-deps --no-binary :all: --no-build-isolation \
            -d "$dir/src" "$name==$version" >&2
        found=$(ls "$dir"/src/*"$version".tar.gz | head -1)
    fi
    echo "$found"
}

build() {  # build() NAME VERSION ENV... : build the wheel unless cached, then install it
    local name=$1 version=$2 wheel; shift 2
    wheel=$(ls "$dir/${name//-/_}-$version"-*.whl 2>/dev/null | head -1 || true)
    if [ -z "$wheel" ]; then
        local src start=$SECONDS
        src=$(sdist "$name" "$version")
        echo "[build_cuda_wheels] building $name $version for sm_$arch from $src"
        env "$@" MAX_JOBS="${MAX_JOBS:-$(nproc)}" "$PY" -m pip wheel -q --no-deps \
            --no-build-isolation -w "$dir" "$src"
        wheel=$(ls "$dir/${name//-/_}-$version"-*.whl | head -1)
        echo "[build_cuda_wheels] built $(basename "$wheel") in $((SECONDS - start)) s"
    else
        echo "[build_cuda_wheels] reusing $wheel"
    fi
    "$PY" -m pip install -q --no-deps --no-index --force-reinstall --upgrade "${target[@]}" "$wheel"
}

for pkg in "${packages[@]}"; do
    case "$pkg" in
    mmcv)
        cxx=()  # torch >= 2.14's headers need C++20, which mmcv's -std=c++17 would override
        "$PY" -c 'import torch, sys; sys.exit(tuple(map(int, torch.__version__.split(".")[:2])) < (2, 14))' \
            && cxx=(CXX="$ROOT/tools/cxx20")
        build mmcv "$MMCV_VERSION" MMCV_WITH_OPS=1 FORCE_CUDA=1 \
            TORCH_CUDA_ARCH_LIST="${arch:0:${#arch}-1}.${arch: -1}" "${cxx[@]}" ;;
    mamba-ssm)
        build mamba-ssm "$MAMBA_VERSION" MAMBA_FORCE_BUILD=TRUE MMM_CUDA_ARCH="$arch" \
            PYTORCH_NVCC="$ROOT/tools/nvcc_one_arch" ;;
    esac
done

# What the wheels are for: mmcv's CUDA nms/RoIAlign and mamba-ssm's scan kernel on this card.
[ ${#target[@]} -gt 0 ] && export PYTHONPATH="${target[1]}${PYTHONPATH:+:$PYTHONPATH}"
"$PY" - "${packages[@]}" <<'PY'
import sys
import torch
if 'mmcv' in sys.argv[1:]:
    from mmcv.ops import RoIAlign, nms
    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.], [50., 50., 60., 60.]]).cuda()
    _, keep = nms(boxes, torch.tensor([0.9, 0.8, 0.7]).cuda(), 0.5)
    assert keep.tolist() == [0, 2], keep
    feats, rois = torch.ones(1, 1, 8, 8).cuda(), torch.tensor([[0., 0., 0., 4., 4.]]).cuda()
    assert RoIAlign((2, 2), 1.0, 0)(feats, rois).shape == (1, 1, 2, 2)
    print('[build_cuda_wheels] mmcv CUDA ops ok')
if 'mamba-ssm' in sys.argv[1:]:
    from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
    u = torch.randn(1, 4, 16, device='cuda')
    y = selective_scan_fn(u, u.abs(), -torch.ones(4, 1, device='cuda'),
                          torch.ones(1, 1, 1, 16, device='cuda'), torch.ones(1, 1, 1, 16, device='cuda'))
    assert y.shape == u.shape and torch.isfinite(y).all()
    print('[build_cuda_wheels] mamba-ssm scan kernel ok')
PY
