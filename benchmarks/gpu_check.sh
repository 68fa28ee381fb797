#!/usr/bin/env bash
# Every GPU measurement docs/design.md §8 asks for (ResNet-101, 768×384, bf16, batch 16):
#   bash benchmarks/gpu_check.sh [h100|h200] [OUT_DIR] [PARTS]
# PARTS (comma-separated, default all four; each part is a few minutes on an H100, so a machine
# that limits one command to 10 minutes takes two calls, e.g. bench,infer,roofline then train):
#   bench    phgmm benchmark: MFU, inference of PHGMM (also BatchNorm folded) and DeepLab v3, PostNet ratios
#   infer    compile_check, inference: eager against CUDA graphs (reduce-overhead), PHGMM ÷ DeepLab v3
#   train    compile_check, training step: eager against CUDA graphs
#   roofline the roofline bounds with the measured times beside them (needs bench's JSON)
set -euo pipefail
GPU=${1:-h100}
OUT_DIR=${2:-${OUT:-gpu_check}}
PARTS=",${3:-bench,infer,train,roofline},"
mkdir -p "$OUT_DIR"
export PYTHONPATH=${PYTHONPATH:-src}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT_DIR/gpu.txt"
if [[ $PARTS == *,bench,* ]]; then
    python -m phgmm benchmark --device cuda --amp bf16 --backbone resnet101 --size 768x384 --batch 16 \
        --train-batch 16 --models phgmm,deeplabv3 --iters 5 --infer-iters 10 \
        --json "$OUT_DIR/bench_bf16.json" | tee "$OUT_DIR/bench.txt"
fi
# A compile failure is a finding, not a reason to lose the measurements after it.
if [[ $PARTS == *,infer,* ]]; then
    python benchmarks/compile_check.py --what infer --modes eager,reduce-overhead --steps 10 2>&1 \
        | tee "$OUT_DIR/compile_infer.txt" || echo "compile_check (infer) failed: see compile_infer.txt"
fi
if [[ $PARTS == *,train,* ]]; then
    python benchmarks/compile_check.py --what train --modes eager,reduce-overhead --steps 5 2>&1 \
        | tee "$OUT_DIR/compile_train.txt" || echo "compile_check (train) failed: see compile_train.txt"
fi
if [[ $PARTS == *,roofline,* ]]; then
    python benchmarks/roofline.py --device "$GPU" --measured "$OUT_DIR/bench_bf16.json" \
        --json "$OUT_DIR/roofline.json" | tee "$OUT_DIR/roofline.md"
fi
