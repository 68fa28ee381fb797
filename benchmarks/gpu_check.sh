#!/usr/bin/env bash
# Every GPU figure of docs/gpu.md in ONE call that fits a 10-minute device command on an H200
# (ResNet-101, 768×384, bf16, batch 16; PHGMM with its full PostNet and DeepLab v3):
#   bash benchmarks/gpu_check.sh [h100|h200] [OUT_DIR] [PARTS]
# PARTS (comma-separated, default "check"):
#   check    benchmarks/gpu_check.py: kernels per step (dispatch counter and torch.profiler), training
#            images/s and MFU eager / graphed (train.cuda_graph) / compiled, inference images/s eager and
#            graphed, graphed vs eager loss over 20 steps, the CamVid epoch time when CAMVID=ROOT is set;
#            stops starting parts after BUDGET_S seconds (default 500) and keeps what it measured
#   bench    phgmm benchmark --cuda-graphs (PostNet ratios, encoder ratios, folded inference; minutes)
#   infer    compile_check, inference: eager against torch.compile reduce-overhead
#   train    compile_check, training step: eager against torch.compile reduce-overhead
#   roofline the roofline bounds with bench's measured times beside them (needs bench's JSON)
# A CPU dry run of the check part: GPU_CHECK_ARGS="--device cpu --tiny" bash benchmarks/gpu_check.sh h200 /tmp/gc
set -euo pipefail
GPU=${1:-h200}
OUT_DIR=${2:-${OUT:-gpu_check}}
PARTS=",${3:-check},"
mkdir -p "$OUT_DIR"
export PYTHONPATH=${PYTHONPATH:-src} PYTHONUNBUFFERED=1
PY=${PYTHON:-$(command -v python3 || command -v python)}   # the lent H200's torch is its plain python3
{ nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv \
    || echo "nvidia-smi: not available here"; } | tee "$OUT_DIR/gpu.txt"
if [[ $PARTS == *,check,* ]]; then
    "$PY" benchmarks/gpu_check.py --out "$OUT_DIR" --budget-s "${BUDGET_S:-500}" ${CAMVID:+--camvid "$CAMVID"} ${GPU_CHECK_ARGS:-} 2>&1 \
        | tee "$OUT_DIR/gpu_check.log" || echo "gpu_check.py failed: see gpu_check.log"
fi
if [[ $PARTS == *,bench,* ]]; then
    "$PY" -m phgmm benchmark --device cuda --amp bf16 --backbone resnet101 --size 768x384 --batch 16 \
        --train-batch 16 --models phgmm,deeplabv3 --iters 5 --infer-iters 10 --cuda-graphs \
        --json "$OUT_DIR/bench_bf16.json" | tee "$OUT_DIR/bench.txt"
fi
# A compile failure is a finding, not a reason to lose the measurements after it.
if [[ $PARTS == *,infer,* ]]; then
    "$PY" benchmarks/compile_check.py --what infer --modes eager,reduce-overhead --steps 10 2>&1 \
        | tee "$OUT_DIR/compile_infer.txt" || echo "compile_check (infer) failed: see compile_infer.txt"
fi
if [[ $PARTS == *,train,* ]]; then
    "$PY" benchmarks/compile_check.py --what train --modes eager,reduce-overhead --steps 5 2>&1 \
        | tee "$OUT_DIR/compile_train.txt" || echo "compile_check (train) failed: see compile_train.txt"
fi
if [[ $PARTS == *,roofline,* ]]; then
    "$PY" benchmarks/roofline.py --device "$GPU" --measured "$OUT_DIR/bench_bf16.json" \
        --json "$OUT_DIR/roofline.json" | tee "$OUT_DIR/roofline.md"
fi
