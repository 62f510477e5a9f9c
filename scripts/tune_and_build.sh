#!/usr/bin/env bash
# Quantize (if given a float model), tune or reuse the tuning logs, and build for a target.
#
#   bash scripts/tune_and_build.sh MODEL.onnx OUT_DIR [TARGET] [TRIALS]
#     MODEL.onnx  float ONNX (quantized here, --sparsity ${SPARSITY:-0.9}) or an already quantized one
#     TARGET      x86 (default) | aarch64 (tuning then needs TRACKER=HOST:PORT and KEY=aarch64)
#     TRIALS      MetaSchedule trials (default 64); 0 reuses the committed/existing logs only
# Environment: CALIB=calib.npz  SPARSITY=0.9  TRACKER=host:port  KEY=aarch64  WORK_DIR=tuning dir
set -euo pipefail
# the package lives in its virtual environment (scripts/setup.sh)
. "$(dirname "${BASH_SOURCE[0]}")/venv.sh" && deepchip_activate
model=${1:?usage: tune_and_build.sh MODEL.onnx OUT_DIR [TARGET] [TRIALS]}
out=${2:?usage: tune_and_build.sh MODEL.onnx OUT_DIR [TARGET] [TRIALS]}
target=${3:-x86}
trials=${4:-64}
mkdir -p "$out"
name=$(basename "${model%.onnx}")
say() { echo "[tune_and_build] $*" >&2; }

# 1. quantize unless the model already carries QDQ pairs
if python3 - "$model" <<'PY'
import sys, onnx
m = onnx.load(sys.argv[1], load_external_data=False)
sys.exit(0 if any(n.op_type == "QuantizeLinear" for n in m.graph.node) else 1)
PY
then
    q="$model"; say "$model is already quantized"
else
    q="$out/$name.q.onnx"
    say "quantize $model -> $q (sparsity ${SPARSITY:-0.9})"
    deepchip quantize "$model" -o "$q" --sparsity "${SPARSITY:-0.9}" ${CALIB:+--calib "$CALIB"} --report "$out/$name.quant.json"
fi

# 2. tune (resumes an existing database) or reuse the logs
log_args=()
if [ "$trials" -gt 0 ]; then
    work=${WORK_DIR:-$out/tuning-$target}
    remote=()
    if [ "$target" != x86 ]; then
        : "${TRACKER:?tuning for $target needs TRACKER=host:port (and KEY) of an RPC tracker}"
        remote=(--tracker "$TRACKER" --key "${KEY:-aarch64}")
    fi
    say "tune $q for $target: $trials trials into $work"
    deepchip tune "$q" --target "$target" --trials "$trials" --work-dir "$work" "${remote[@]}"
    log_args=(--tuning-log "$work")
fi

# 3. build
so="$out/$name.$target.so"
say "compile $q -> $so"
deepchip compile "$q" -o "$so" --target "$target" "${log_args[@]}" --report "$out/$name.$target.report.json"
say "done: $so"
