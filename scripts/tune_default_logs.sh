#!/usr/bin/env bash
# The committed tuning logs: tune the bundled model and the three reference networks (90% zeros)
# for this machine's x86 preset, into tuning_logs/<target-dir>/ (what `deepchip compile` applies
# by default), and, if an aarch64 RPC tracker is given, for the aarch64 preset.
#
#   bash scripts/tune_default_logs.sh [TRIALS_PER_MODEL]        # default 32
#   DEEPCHIP_X86_ISA=x86-avx2 bash scripts/tune_default_logs.sh  # the AVX2 class's log, on any x86 with AVX2
#   TRACKER=127.0.0.1:9190 KEY=aarch64 bash scripts/tune_default_logs.sh 16   (X86=0: aarch64 only)
# A committed log holds schedules only: no formats.json (the per-layer formats stay the format
# rule's, which the run-time bytes in docs/compression.md are measured on) and, after
# scripts/prune_log.py, only our primitives' records (TVM's pools run faster on the defaults).
# Under QEMU, aarch64 measurements are emulation timings: such a log proves the remote tuning
# path, it does not rank schedules by real ARM speed (tune against a board for that).
set -euo pipefail
# the package lives in its virtual environment (scripts/setup.sh)
. "$(dirname "${BASH_SOURCE[0]}")/venv.sh" && deepchip_activate
cd "$(dirname "$0")/.."
trials=${1:-32}
work=$(mktemp -d)
say() { echo "[tune_default_logs $(date +%H:%M:%S)] $*" >&2; }

python3 - "$work" <<'PY'
import sys, numpy as np, tvm_deepchip
from pathlib import Path
from tvm_deepchip import data, models
out = Path(sys.argv[1])
d = Path(data.__file__).parent
tvm_deepchip.quantize(str(d / "digits_ternary_float.onnx"), str(out / "digits.onnx"),
                      calib=np.load(d / "digits_calib.npz")["x"])
for name, build in models.MODELS.items():
    fm = build(batch=1, seed=0)
    shape = [x.dim_value for x in fm.graph.input[0].type.tensor_type.shape.dim]
    calib = np.random.default_rng(0).random([4] + shape[1:], dtype=np.float32)
    tvm_deepchip.quantize(fm, str(out / f"{name}.onnx"), sparsity=0.9, calib=calib)
PY

x86_dir=$(python3 -c "from tvm_deepchip import targets, tuning_db; print(tuning_db.default_dir(targets.get_preset('x86')))")
for m in $([ "${X86:-1}" = 1 ] && echo digits svhn_convnet resnet44 alexnet); do
    shape=(); [ $m = digits ] && shape=(--input-shape input:1,1,8,8)
    say "x86: $m, $trials trials -> $x86_dir"
    deepchip tune "$work/$m.onnx" --target x86 --trials "$trials" --work-dir "$x86_dir" --no-format-choice "${shape[@]}"
done
[ "${X86:-1}" = 1 ] && python3 scripts/prune_log.py "$x86_dir"
if [ -n "${TRACKER:-}" ]; then
    arm_dir=$(python3 -c "from tvm_deepchip import targets, tuning_db; print(tuning_db.default_dir(targets.get_preset('aarch64')))")
    for m in digits svhn_convnet; do
        shape=(); [ $m = digits ] && shape=(--input-shape input:1,1,8,8)
        say "aarch64 via $TRACKER: $m, $trials trials -> $arm_dir"
        deepchip tune "$work/$m.onnx" --target aarch64 --trials "$trials" --work-dir "$arm_dir" \
            --tracker "$TRACKER" --key "${KEY:-aarch64}" --timeout 120 "${shape[@]}"
    done
fi
rm -rf "$work"
say "done"
