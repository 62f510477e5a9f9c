#!/usr/bin/env bash
# The Larq venv for the BNN benchmark's Larq Compute Engine peer (scripts/larq_peer.py): kept apart
# from the project's venv (TensorFlow pins numpy < 2 and an old ml_dtypes). Idempotent.
#   bash scripts/setup_larq.sh [DIR]          # default /tmp/larq_venv
#   export DEEPCHIP_LARQ_PYTHON=DIR/bin/python  # scripts/bench.py then times LCE for the xnor scheme
# Pins: what ran here (x86-64, CPython 3.11): larq-compute-engine 0.16.0 (June 2024) is built for
# TensorFlow 2.16 and needs tf.keras 2 (tf-keras); onnx 1.16 because newer onnx wants an ml_dtypes
# newer than TensorFlow 2.16 allows.
set -euo pipefail
DIR=${1:-/tmp/larq_venv}
PY=${PYTHON:-python3}
[ -x "$DIR/bin/python" ] || "$PY" -m venv "$DIR"
"$DIR/bin/python" -m pip install -q --upgrade pip
"$DIR/bin/python" -m pip install -q "tensorflow==2.16.2" "tf-keras==2.16.0" "numpy<2" "larq==0.14.0" \
    "larq-compute-engine==0.16.0" "onnx==1.16.2" "onnxruntime==1.32.0"
TF_USE_LEGACY_KERAS=1 TF_CPP_MIN_LOG_LEVEL=3 "$DIR/bin/python" -c \
    "import larq, larq_compute_engine, onnx, onnxruntime; print('larq venv ready:', larq_compute_engine.__version__)"
echo "export DEEPCHIP_LARQ_PYTHON=$DIR/bin/python"
