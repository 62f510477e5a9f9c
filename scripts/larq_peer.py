#!/usr/bin/env python3
"""Larq Compute Engine (LCE) as a peer of the BNN benchmark: convert, check, and serve timings.

Runs under the Larq venv's python ($DEEPCHIP_LARQ_PYTHON; made by scripts/setup_larq.sh), not the
project's: TensorFlow 2.16 + tf-keras, larq, larq-compute-engine 0.16, onnx, onnxruntime.

    $PY scripts/larq_peer.py convert MODEL.q.onnx OUT.tflite --check X.npy   # JSON report on stdout
    $PY scripts/larq_peer.py serve OUT.tflite X.npy --threads 2             # scripts/bench_larq.py's server

convert: the project's quantized BNN ONNX model (scheme "xnor") rebuilt in Larq (scripts/larq_keras.py),
converted by larq_compute_engine.convert_keras_model to a .tflite flatbuffer; with --check, run by
LCE's interpreter and by onnxruntime on the same input (X.npy, NCHW), and compared.
serve: one LCE interpreter; reads a run count per stdin line, answers one JSON list of durations (s)
per line, once its own threads have gone quiet (as scripts/bench_isolated.py's _settle does for
the other contenders, which cannot see this process's CPU time: it is a grandchild).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # larq and LCE's converter need tf.keras 2 (tf-keras)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's CUDA-plugin errors on a CPU-only machine
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402


def interpreter(flatbuffer: bytes, threads: int):
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    return Interpreter(flatbuffer, num_threads=threads)


def nhwc(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1))


def op_counts(flatbuffer: bytes) -> dict:
    """Operator name -> how many times the converted graph runs it."""
    from larq_compute_engine.mlir.python import tflite_schema as fb

    model = fb.ModelT.InitFromObj(fb.Model.GetRootAsModel(bytearray(flatbuffer), 0))
    names = {v: k for k, v in vars(fb.BuiltinOperator).items() if not k.startswith("_")}
    codes = [(c.customCode.decode() if c.customCode else names.get(max(c.builtinCode, c.deprecatedBuiltinCode), "?"))
             for c in model.operatorCodes]
    counts: dict = {}
    for op in model.subgraphs[0].operators:
        counts[codes[op.opcodeIndex]] = counts.get(codes[op.opcodeIndex], 0) + 1
    return counts


def convert(onnx_path: Path, out: Path) -> list[str]:
    import onnx
    from larq_compute_engine import convert_keras_model

    from larq_keras import keras_model

    model, notes = keras_model(onnx.load(str(onnx_path)))
    out.write_bytes(convert_keras_model(model))
    return notes


def check(onnx_path: Path, flatbuffer: bytes, x: np.ndarray, threads: int) -> dict:
    """LCE's logits against onnxruntime's on the quantized ONNX model, same input."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    ref = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    got = np.asarray(interpreter(flatbuffer, threads).predict(nhwc(x))).reshape(ref.shape)
    return {"argmax_agrees_with_ort": bool(np.array_equal(got.argmax(-1), ref.argmax(-1))),
            "max_abs_diff_vs_ort": float(np.abs(got - ref).max()),
            "max_abs_logit_ort": float(np.abs(ref).max())}


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def settle(interval_s: float = 0.02, limit_s: float = 2.0) -> None:
    """Return once this process uses under a tenth of a core over `interval_s`, or after `limit_s`."""
    deadline, last = time.monotonic() + limit_s, _cpu_s()
    while time.monotonic() < deadline:
        time.sleep(interval_s)
        now = _cpu_s()
        if now - last < 0.1 * interval_s:
            return
        last = now


def serve(flatbuffer: bytes, x: np.ndarray, threads: int, inp=sys.stdin, out=sys.stdout) -> None:
    run = interpreter(flatbuffer, threads).interpreter.predict  # the wrapper itself: no generator per call
    feed = [nhwc(x)]
    for _ in range(10):  # the first runs allocate and bit-pack (35 ms for the SVHN ConvNet's first)
        run(feed)
    print(json.dumps({"ready": True}), file=out, flush=True)
    for line in inp:
        times = []
        for _ in range(int(line)):
            start = time.perf_counter()
            run(feed)
            times.append(time.perf_counter() - start)
        settle()
        print(json.dumps(times), file=out, flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("convert")
    c.add_argument("onnx", type=Path)
    c.add_argument("tflite", type=Path)
    c.add_argument("--check", type=Path, help="input .npy (NCHW): compare with onnxruntime")
    c.add_argument("--threads", type=int, default=2)
    s = sub.add_parser("serve")
    s.add_argument("tflite", type=Path)
    s.add_argument("x", type=Path)
    s.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    if args.cmd == "serve":
        return serve(args.tflite.read_bytes(), np.load(args.x), args.threads)
    import larq_compute_engine
    import tensorflow as tf

    report = {"versions": {"tensorflow": tf.__version__, "larq_compute_engine": larq_compute_engine.__version__},
              "notes": convert(args.onnx, args.tflite)}
    flatbuffer = args.tflite.read_bytes()
    report["ops"] = op_counts(flatbuffer)
    if args.check:
        report.update(check(args.onnx, flatbuffer, np.load(args.check).astype(np.float32), args.threads))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
