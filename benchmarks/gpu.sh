#!/usr/bin/env bash
# The GPU measurements of docs/benchmarks.md, one phase per command. Logs go to $OUT (default
# ./gpu_out): env.log (card, driver, versions) and the phase's own log. mmengine and its
# pure-Python needs travel as wheels in .whl/ for machines without them (docs/benchmarks.md).
#
#   bash benchmarks/gpu.sh tests                 # Triton scan against the float64 reference
#   bash benchmarks/gpu.sh scan [--sweep]        # the scan kernel against the copy bandwidth,
#                                                # default and exact softplus (+ tile sweep)
#   bash benchmarks/gpu.sh inference [ARGS]      # compiled img/s of every variant, fp32/bf16
#   bash benchmarks/gpu.sh training [ARGS]       # S6 training step, eager and one CUDA graph
#
# ARGS go to tools/analysis/benchmark.py after the phase's own, so a later --arch, --amp or
# --runs overrides the phase's: e.g. `inference --arch b2 b4`. On an H100 compiling one
# variant takes ~25 s per dtype and B2/B4 run longest: split `inference` by --arch to stay
# within a 10-minute command (t2 t4 s6 | b1 | b2 b4). Eager figures: run benchmark.py itself.
set -u
PHASE=${1:-}
case "$PHASE" in
tests|scan|inference|training) shift ;;
*) echo "usage: bash benchmarks/gpu.sh tests|scan|inference|training [ARGS] (got '$PHASE')" >&2
   exit 2 ;;
esac
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu_out}
mkdir -p "$OUT"
if ! python3 -c 'import mmengine' 2>/dev/null && ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}  # the package, without installing it
B="python3 tools/analysis/benchmark.py --backend triton"

{
    date -u; nvidia-smi; python3 -c 'import torch, triton; print(torch.__version__,
        triton.__version__, torch.cuda.get_device_name())'
    python3 -c 'import mmengine.model, mmengine.registry, mmmobilemamba; print("imports ok")'
} > "$OUT/env.log" 2>&1
case "$PHASE" in
tests)
    timeout 300 python3 -m pytest -q -rs -n 8 --durations=8 tests/test_ops/test_scan_triton.py \
        "$@" > "$OUT/tests.log" 2>&1
    tail -3 "$OUT/tests.log" ;;
scan)
    timeout 240 python3 benchmarks/scan_bandwidth.py "$@" > "$OUT/scan.log" 2>&1
    timeout 60 python3 benchmarks/scan_bandwidth.py --exact-softplus > "$OUT/scan_exact.log" 2>&1
    tail -10 "$OUT/scan.log"; tail -10 "$OUT/scan_exact.log" ;;
inference)
    timeout 540 $B --arch all --amp none bf16 --channels-last --compile \
        --compile-mode reduce-overhead --runs 2 "$@" > "$OUT/bench.log" 2>&1
    grep -E '^(arch|[tsb][0-9] )' "$OUT/bench.log" ;;
training)
    {
        timeout 90 $B --arch s6 --amp none bf16 --channels-last --train --runs 2 "$@"
        timeout 90 $B --arch s6 --amp none bf16 --channels-last --train --cuda-graph --runs 2 "$@"
    } > "$OUT/bench.log" 2>&1
    grep -E '^(arch|[tsb][0-9] )' "$OUT/bench.log" ;;
esac
