#!/usr/bin/env bash
# Every GPU measurement docs/design.md §8 asks for, in one call of about 8 minutes on an H100:
#   bash benchmarks/gpu_check.sh [h100|h200] [OUT_DIR]
# 1. phgmm benchmark (ResNet-101, 768×384, bf16, batch 16): MFU, inference of PHGMM (also with
#    BatchNorm folded) and DeepLab v3, the PostNet ratios;
# 2. compile_check, inference: eager against CUDA graphs (reduce-overhead), PHGMM ÷ DeepLab v3;
# 3. compile_check, training step: eager against CUDA graphs;
# 4. the roofline bounds with the measured times beside them.
set -euo pipefail
GPU=${1:-h100}
OUT_DIR=${2:-${OUT:-gpu_check}}
mkdir -p "$OUT_DIR"
export PYTHONPATH=${PYTHONPATH:-src}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT_DIR/gpu.txt"
python -m phgmm benchmark --device cuda --amp bf16 --backbone resnet101 --size 768x384 --batch 16 \
    --train-batch 16 --models phgmm,deeplabv3 --iters 5 --infer-iters 10 \
    --json "$OUT_DIR/bench_bf16.json" | tee "$OUT_DIR/bench.txt"
# A compile failure is a finding, not a reason to lose the measurements after it.
python benchmarks/compile_check.py --what infer --modes eager,reduce-overhead --steps 10 2>&1 \
    | tee "$OUT_DIR/compile_infer.txt" || echo "compile_check (infer) failed: see compile_infer.txt"
python benchmarks/compile_check.py --what train --modes eager,reduce-overhead --steps 5 2>&1 \
    | tee "$OUT_DIR/compile_train.txt" || echo "compile_check (train) failed: see compile_train.txt"
python benchmarks/roofline.py --device "$GPU" --measured "$OUT_DIR/bench_bf16.json" \
    --json "$OUT_DIR/roofline.json" | tee "$OUT_DIR/roofline.md"
