#!/usr/bin/env bash
# The GPU measurements of docs/benchmarks.md, one phase per command. Logs go to $OUT (default
# ./gpu_out): env.log (card, driver, versions) and the phase's own log. mmengine and its
# pure-Python needs travel as wheels in .whl/ for machines without them
# (benchmarks/fetch_gpu_wheels.sh fills it; docs/benchmarks.md).
#
#   bash benchmarks/gpu.sh tests                 # every GPU test: Triton scan, mamba_ssm scan
#                                                # (where built: tools/build_cuda_wheels.sh),
#                                                # CUDA deployment, every toy config fp32/fp16/bf16,
#                                                # the CUDA-graph train step
#   bash benchmarks/gpu.sh downstream [ARGS]     # detection/segmentation speed against R50
#   bash benchmarks/gpu.sh scan [--sweep]        # the scan kernel against the copy bandwidth,
#                                                # default and exact softplus (+ tile sweep);
#                                                # triton against mamba_ssm (where built)
#   bash benchmarks/gpu.sh inference [ARGS]      # compiled img/s of every variant, fp32/bf16
#   bash benchmarks/gpu.sh training [ARGS]       # S6 training step, eager and one CUDA graph
#   bash benchmarks/gpu.sh train-speed [ARGS]    # S6 through the Runner from JPEG files: the
#                                                # GPU augmentation's stages, the loader
#                                                # alone, eager, --cuda-graph and
#                                                # --gpu-augment --cuda-graph, fp32/bf16;
#                                                # BASELINE=DIR (an older checkout: e.g.
#                                                # `git archive REV mmmobilemamba configs
#                                                # tools | tar -x -C DIR`) adds the two
#                                                # --gpu-augment rows of that code, same run
#
# ARGS go to tools/analysis/benchmark.py after the phase's own, so a later --arch, --amp or
# --runs overrides the phase's: e.g. `inference --arch b2 b4`. On an H100 compiling one
# variant takes ~25 s per dtype and B2/B4 run longest: split `inference` by --arch to stay
# within a 10-minute command (t2 t4 s6 | b1 | b2 b4). Eager figures: run benchmark.py itself.
set -u
PHASE=${1:-}
case "$PHASE" in
tests|scan|inference|training|train-speed|downstream) shift ;;
*) echo "usage: bash benchmarks/gpu.sh" \
        "tests|scan|inference|training|train-speed|downstream [ARGS] (got '$PHASE')" >&2
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
if [ "$PHASE" = tests ] || [ "$PHASE" = downstream ] || [ "$PHASE" = train-speed ]; then
    # mmcv with CUDA ops (built once per machine from .whl/mmcv-2.1.0.tar.gz, or from PyPI);
    # classification alone (train-speed) runs on any mmcv, mmcv-lite (MMCV_WITH_OPS=0) too
    ops='import mmcv.ops'; [ "$PHASE" = train-speed ] && ops='import mmcv'
    python3 -c "$ops" 2>/dev/null || bash tools/build_cuda_wheels.sh \
        $(ls .whl/mmcv-*.tar.gz >/dev/null 2>&1 && echo --sdist-dir .whl) --target /tmp/site \
        mmcv > "$OUT/build_mmcv.log" 2>&1 || { tail -20 "$OUT/build_mmcv.log"; exit 1; }
    export PYTHONPATH=$PYTHONPATH:/tmp/site
    # mmpretrain 1.2.0 cannot import beside transformers >= 5 (docs/get_started.md). It decides
    # from transformers' installed version whether to load its multimodal models: a dist-info
    # that says 4.0.0 makes it skip them, as it does without transformers.
    if python3 -c 'import sys, importlib.metadata as m
sys.exit(int(m.version("transformers").split(".")[0]) < 5)' 2>/dev/null; then
        mkdir -p /tmp/shim/transformers-4.0.0.dist-info
        printf 'Metadata-Version: 2.1\nName: transformers\nVersion: 4.0.0\n' \
            > /tmp/shim/transformers-4.0.0.dist-info/METADATA
        export PYTHONPATH=/tmp/shim:$PYTHONPATH
    fi
fi
B="python3 tools/analysis/benchmark.py --backend triton"

{
    date -u; nvidia-smi; python3 -c 'import torch, triton; print(torch.__version__,
        triton.__version__, torch.cuda.get_device_name())'
    python3 -c 'import mmengine.model, mmengine.registry, mmmobilemamba; print("imports ok")'
} > "$OUT/env.log" 2>&1
case "$PHASE" in
tests)  # about 8 min on an H200 with 16 cores
    timeout 570 python3 -m pytest -p no:cacheprovider -v -rA -n 14 --durations=40 \
        tests/test_tools/test_toy_runs_cuda.py tests/test_deployment/test_cuda_deployment.py \
        tests/test_engine/test_cuda_graph_train_step_cuda.py tests/test_models/test_gpu_augment.py \
        tests/test_models/test_gpu_augment_cls_data_preprocessor.py \
        tests/test_ops/test_scan_triton.py tests/test_ops/test_scan_mamba_ssm_cuda.py \
        tests/test_ops/test_scan_backends.py tests/test_models/test_losses.py \
        tests/test_utils/test_cuda_capture.py tests/test_engine/test_prefetch_batches_hook.py \
        tests/test_models/test_backbone_compile_cuda.py "$@" \
        > "$OUT/tests.log" 2>&1
    grep -E '^(FAILED|ERROR)|passed|failed' "$OUT/tests.log" | tail -15 ;;
downstream)
    timeout 540 python3 benchmarks/downstream_timing.py --json "$OUT/timing.json" "$@" \
        > "$OUT/timing.log" 2>&1
    grep -E '^\||Error' "$OUT/timing.log" ;;
scan)
    timeout 240 python3 benchmarks/scan_bandwidth.py "$@" > "$OUT/scan.log" 2>&1
    timeout 60 python3 benchmarks/scan_bandwidth.py --exact-softplus > "$OUT/scan_exact.log" 2>&1
    timeout 120 python3 benchmarks/scan_backends.py > "$OUT/scan_backends.log" 2>&1
    tail -10 "$OUT/scan.log"; tail -10 "$OUT/scan_exact.log"; grep '^|' "$OUT/scan_backends.log" ;;
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
train-speed)  # 8 runs (10 with BASELINE) of 30-60 s each on an H100; ARGS go to each run
    timeout 90 python3 benchmarks/gpu_augment_speed.py --data /tmp/jpeg \
        --json "$OUT/gpu_augment_speed.json" > "$OUT/gpu_augment_speed.log" 2>&1
    grep -E '^\||Error' "$OUT/gpu_augment_speed.log"
    # 100 iterations a run (one epoch of 12,800 images): 20 of warm-up, 80 timed
    S="python3 tools/analysis/train_speed.py configs/classification/mobilemamba_s6_8xb128_in1k.py
       --data /tmp/jpeg --images 12800 --warmup 20 --iters 80 --workers 14
       --work-dir /tmp/train_speed"
    {
        timeout 90 $S --json "$OUT/train_speed.json" --loader-only "$@"
        timeout 90 $S --json "$OUT/train_speed.json" --loader-only --gpu-augment "$@"
        for flags in "--amp" "" "--amp --cuda-graph" "--cuda-graph" \
                     "--amp --cuda-graph --gpu-augment" "--cuda-graph --gpu-augment"; do
            timeout 90 $S --json "$OUT/train_speed.json" --skip-loader $flags "$@"
        done
        if [ -n "${BASELINE:-}" ]; then  # an older checkout: its own tools, configs, package
            BASELINE=$(cd "$BASELINE" && pwd)  # it is run from there, and on PYTHONPATH
            echo "== baseline: $BASELINE"
            for flags in "--amp --cuda-graph --gpu-augment" "--cuda-graph --gpu-augment"; do
                (cd "$BASELINE" && PYTHONPATH=$BASELINE:$PYTHONPATH timeout 90 $S \
                    --json "$OUT/train_speed_baseline.json" --skip-loader $flags "$@")
            done
        fi
    } > "$OUT/train_speed.log" 2>&1
    grep -E '^\| (mobile|loader)|^== baseline|Error' "$OUT/train_speed.log" ;;
esac
