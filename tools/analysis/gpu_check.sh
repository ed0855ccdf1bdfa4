#!/usr/bin/env bash
# One GPU session's checks in one command: the Triton scan tests, the scan kernel against the
# card's copy bandwidth, and the MobileMamba throughput benchmarks. Logs go to $OUT (default
# ./gpu_out). mmengine and its pure-Python needs travel as wheels in .whl/ (see
# docs/benchmarks.md) for machines without them.
#
#   bash tools/analysis/gpu_check.sh explore   # tests, kernel sweep, S6 eager/compile/profile
#   bash tools/analysis/gpu_check.sh final-a   # S6 training, inference t2/t4/s6, eager all
#   bash tools/analysis/gpu_check.sh final-b   # inference s6/b1/b2/b4, tests, scan, train profile
#   bash tools/analysis/gpu_check.sh s2-a      # tests, scan (fast/exact softplus), S6 training
#   bash tools/analysis/gpu_check.sh s2-b      # compiled B2/B4 inference
# Each phase fits one 10-minute device command on an H100 only with little to spare (compiling
# a variant takes ~25 s, a training graph ~90 s); docs/benchmarks.md says which logs each ran.
set -u
PHASE=${1:-final-a}
cd "$(dirname "$0")/../.."
OUT=${OUT:-$PWD/gpu_out}
mkdir -p "$OUT"
if ! python3 -c 'import mmengine' 2>/dev/null && ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
B="python3 tools/analysis/benchmark.py --backend triton"
LOG=$OUT/bench.log

{
    date -u; nvidia-smi; python3 -c 'import torch, triton; print(torch.__version__,
        triton.__version__, torch.cuda.get_device_name())'
    python3 -c 'import mmengine.model, mmengine.registry, mmmobilemamba; print("imports ok")'
} > "$OUT/env.log" 2>&1
run_tests() {
    timeout 300 python3 -m pytest -q -rs -n 8 --durations=8 tests/test_scan_triton.py \
        > "$OUT/tests.log" 2>&1
    tail -3 "$OUT/tests.log"
}
INFER="--channels-last --compile --compile-mode reduce-overhead --runs 2"
case "$PHASE" in
explore)   # what was run to choose the settings (kernel sweep, S6 configurations)
    run_tests
    timeout 240 python3 tools/analysis/scan_bandwidth.py --sweep > "$OUT/scan.log" 2>&1
    tail -12 "$OUT/scan.log"
    {
        timeout 60 $B --arch s6 --amp none bf16 --channels-last
        timeout 60 $B --arch s6 --amp bf16 --profile
        timeout 120 $B --arch s6 --amp none bf16 --channels-last --compile --profile
        timeout 60 $B --arch s6 --amp bf16 --channels-last --compile --compile-mode reduce-overhead
        timeout 40 $B --arch s6 --amp bf16 --channels-last --train
        timeout 150 $B --arch s6 --amp bf16 --channels-last --compile --train
    } > "$LOG" 2>&1 ;;
final-a)   # training, eager inference of every variant, compiled inference of the small ones
    {
        timeout 90 $B --arch s6 --amp none bf16 --channels-last --train --runs 2
        timeout 200 $B --arch s6 --amp bf16 none --channels-last --compile --train --runs 2
        timeout 240 $B --arch t2 t4 s6 --amp none bf16 $INFER
        timeout 100 $B --arch all --amp none bf16 --channels-last
    } > "$LOG" 2>&1 ;;
final-b)   # compiled S6, tests, kernel bandwidth, training profile, compiled b1/b2/b4
    {
        timeout 90 $B --arch s6 --amp none bf16 $INFER
        timeout 40 $B --arch s6 --amp bf16 --channels-last --train --warmup 3 --iters 3 \
            --repeats 3 --profile
    } > "$LOG" 2>&1
    run_tests
    timeout 60 python3 tools/analysis/scan_bandwidth.py > "$OUT/scan.log" 2>&1
    tail -10 "$OUT/scan.log"
    timeout 200 $B --arch b1 b2 b4 --amp none bf16 $INFER >> "$LOG" 2>&1 ;;
s2-a)      # session 2: kernel tests and bandwidth, training eager vs one CUDA graph per step
    run_tests
    timeout 90 python3 tools/analysis/scan_bandwidth.py > "$OUT/scan.log" 2>&1
    timeout 60 python3 tools/analysis/scan_bandwidth.py --exact-softplus > "$OUT/scan_exact.log" 2>&1
    tail -10 "$OUT/scan.log"; tail -10 "$OUT/scan_exact.log"
    {
        timeout 90 $B --arch s6 --amp none bf16 --channels-last --train --runs 2
        timeout 90 $B --arch s6 --amp none bf16 --channels-last --train --cuda-graph --runs 2
    } > "$LOG" 2>&1 ;;
s2-b)      # session 2: compiled inference of B2 and B4 (missing from the first session)
    timeout 400 $B --arch b2 b4 --amp none bf16 $INFER > "$LOG" 2>&1 ;;
esac
grep -E '^(arch|[tsb][0-9] )' "$LOG"
