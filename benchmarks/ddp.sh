#!/usr/bin/env bash
# The data-parallel check in one command on a 2-GPU machine (under 8 minutes): 1 GPU with
# batch 2N against 2 GPUs with batch N (DDP through tools/dist_train.sh, NCCL, SyncBN, AMP) on
# the classification and segmentation toys, with benchmarks/ddp_check.py. Logs go to $OUT
# (default work_dirs/ddp_check_out): ddp_check.log (everything printed, the table last),
# summary.json (every number) and the six runs' logs: 8 files.
#
#   bash benchmarks/ddp.sh                         # 2 GPUs, .whl/ carried along
#   DDP_CHECK_DEVICE=cpu bash benchmarks/ddp.sh    # dry run on CPU (gloo, 3 iters)
#
# The 1-GPU batch-N baselines are skipped when they would end after DDP_CHECK_BUDGET seconds
# (420); the equivalence runs always run, so give the command a 590 s limit.
#
# Machines without the OpenMMLab stack (the lent GPU machines) get it from the wheels in
# .whl/: mmengine, mmcv-lite, mmpretrain, mmsegmentation and the small pure-Python packages
# they import that the machine lacks. mmcv travels as mmcv-lite (no compiled ops), enough for
# mmengine and mmpretrain, but mmseg cannot be imported without mmcv's compiled ops
# (mmseg/utils/mask_classification.py imports mmcv.ops at import time). So mmcv 2.1.0 is
# compiled with its CPU ops from .whl/mmcv-2.1.0.tar.gz in the background while the
# classification runs go (nice'd, half the cores); the segmentation runs use that build.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/work_dirs/ddp_check_out}
mkdir -p "$OUT"
DEVICE=${DDP_CHECK_DEVICE:-cuda}
BUDGET=${DDP_CHECK_BUDGET:-420}          # seconds from the start to the end of the last run
SITE=${DDP_CHECK_SITE:-/tmp/site}        # where the wheels of .whl/ are installed
BUILD_MMCV=${DDP_CHECK_BUILD_MMCV:-auto}  # auto: only if mmseg does not import
WD=${DDP_CHECK_WORK_DIR:-$PWD/work_dirs/ddp_check}
PY=${PYTHON:-python3}
export PYTHON=$PY
# NVLink multicast stays off (the lent machines require it; harmless elsewhere)
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export PYTHONUNBUFFERED=1
START=$(date +%s)
elapsed() { echo $(( $(date +%s) - START )); }

main() {
echo "[ddp_check.sh] $(date -u) device=$DEVICE budget=${BUDGET}s"

if ! $PY -c 'import mmengine, mmcv, mmpretrain' 2>/dev/null; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$SITE" .whl/*.whl || return 1
    export PYTHONPATH=$SITE${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
{ nvidia-smi -L; nvidia-smi topo -m; } 2>/dev/null
$PY - <<'PY'
import numpy, torch, mmengine, mmcv, mmpretrain, mmmobilemamba
print('python', __import__('sys').version.split()[0], 'torch', torch.__version__, 'numpy',
      numpy.__version__, 'mmengine', mmengine.__version__, 'mmcv', mmcv.__version__,
      'mmpretrain', mmpretrain.__version__, 'GPUs', torch.cuda.device_count())
PY
[ $? = 0 ] || return 1

# mmcv with its (CPU) ops for mmseg, built in the background
MMCV_SITE=${DDP_CHECK_MMCV_SITE:-/tmp/site-mmcv}
mmseg_imports() {
    PYTHONPATH=$1${PYTHONPATH:+:$PYTHONPATH} $PY -c 'import mmseg.models' 2>/dev/null
}
BUILD_PID=
mkdir -p "$(dirname "$WD")"
PLAIN_OK=0
mmseg_imports "" && PLAIN_OK=1
if [ "$BUILD_MMCV" = 1 ] || { [ "$BUILD_MMCV" = auto ] && [ "$PLAIN_OK" = 0 ]; }; then
    JOBS=$(( $(nproc) / 2 )); [ "$JOBS" -lt 1 ] && JOBS=1
    # torch builds in parallel only with ninja; the pip package's binary may be off PATH
    command -v ninja >/dev/null || PATH=$PATH:$($PY -c 'import ninja; print(ninja.BIN_DIR)')
    echo "[ddp_check.sh] ninja: $(command -v ninja || echo MISSING)," \
        "g++: $(g++ -dumpfullversion 2>&1)"
    echo "[ddp_check.sh] mmseg needs mmcv's ops: building mmcv 2.1.0 (CPU ops, $JOBS jobs)"
    (
        rm -rf "$MMCV_SITE.wheel" "$MMCV_SITE"
        # CUDA hidden: the CPU ops are all mmseg's import needs, and they build in minutes
        CUDA_VISIBLE_DEVICES= MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS=$JOBS CXX=$PWD/tools/cxx20 \
            nice -n 19 $PY -m pip wheel -q --no-deps --no-build-isolation --no-cache-dir \
            .whl/mmcv-2.1.0.tar.gz -w "$MMCV_SITE.wheel" &&
        $PY -m pip install -q --no-index --no-deps --no-compile --target "$MMCV_SITE" \
            "$MMCV_SITE".wheel/mmcv-2.1.0-*.whl
    ) > "$WD.mmcv-build.log" 2>&1 &
    BUILD_PID=$!
fi

$PY benchmarks/ddp_check.py --device "$DEVICE" --tasks cls --work-dir "$WD" \
    --summary "$OUT/cls.json" --copy-logs "$OUT" --time-budget $(( BUDGET / 2 - $(elapsed) ))

if [ -n "$BUILD_PID" ]; then
    echo "[ddp_check.sh] $(elapsed) s: waiting for the mmcv build"
    wait "$BUILD_PID"
    rc=$?
    echo "[ddp_check.sh] $(elapsed) s: mmcv build exit code $rc; its log ends:"
    tail -5 "$WD.mmcv-build.log"
fi
if [ "$PLAIN_OK" = 1 ] && [ -z "$BUILD_PID" ]; then
    SEG_SITE=
elif mmseg_imports "$MMCV_SITE"; then
    SEG_SITE=$MMCV_SITE
    echo "[ddp_check.sh] mmseg imports with the mmcv in $MMCV_SITE"
else
    echo "[ddp_check.sh] mmseg does not import, so no segmentation runs:"
    PYTHONPATH=$MMCV_SITE:$PYTHONPATH $PY -c 'import mmseg.models' 2>&1 | tail -4
    tail -30 "$WD.mmcv-build.log" 2>/dev/null
    SEG_SITE=none
fi
if [ "$SEG_SITE" != none ]; then
    PYTHONPATH=${SEG_SITE:+$SEG_SITE:}$PYTHONPATH $PY benchmarks/ddp_check.py \
        --device "$DEVICE" --tasks seg --work-dir "$WD" --summary "$OUT/seg.json" \
        --copy-logs "$OUT" --time-budget $(( BUDGET - $(elapsed) ))
fi

echo "[ddp_check.sh] done in $(elapsed) s"
SUMMARIES=$(ls "$OUT"/cls.json "$OUT"/seg.json 2>/dev/null)
if [ -n "$SUMMARIES" ]; then
    $PY - "$OUT/summary.json" $SUMMARIES <<'PY'
import json, sys
reports = [r for path in sys.argv[2:] for r in json.load(open(path))]
json.dump(reports, open(sys.argv[1], 'w'), indent=1)
PY
    rm -f "$OUT"/cls.json "$OUT"/seg.json
    $PY benchmarks/ddp_check.py --report "$OUT/summary.json"
fi
}

main 2>&1 | tee "$OUT/ddp_check.log"
