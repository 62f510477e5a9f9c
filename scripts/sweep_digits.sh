#!/usr/bin/env bash
# The accuracy / efficiency trade-off on the bundled digits model (real held-out images), written
# to docs/sweep/ (sweep.md, sweep.json and the two plots):
#   - QAT: one ternary model trained per target sparsity from the shipped FP32 model (the trainer's
#     default epochs; ~3 min per point on 2 cores), quantized, compiled for x86 and measured;
#     --auto picks the most compressed point within 0.5 accuracy points of FP32.
#   - PTQ of the same FP32 model at the same sparsities (docs/sweep/ptq/): the contrast that
#     motivates QAT (post-training ternarization of this net falls to chance accuracy).
# Usage: scripts/sweep_digits.sh [extra deepchip-sweep options, e.g. --epochs 30]
set -euo pipefail
# the package lives in its virtual environment (scripts/setup.sh)
. "$(dirname "${BASH_SOURCE[0]}")/venv.sh" && deepchip_activate
cd "$(dirname "$0")/.."
D=tvm_deepchip/data
OUT=${OUT:-docs/sweep}
GRID=${GRID:-0.5,0.7,0.8,0.9,0.95}
deepchip sweep "$D/digits_fp32.onnx" --calib "$D/digits_calib.npz" --test "$D/digits_test.npz" \
    --mode qat --sparsities "$GRID" --auto --budget 0.5 --out "$OUT" "$@"
deepchip sweep "$D/digits_fp32.onnx" --calib "$D/digits_calib.npz" --test "$D/digits_test.npz" \
    --mode ptq --sparsities "$GRID" --out "$OUT/ptq"
