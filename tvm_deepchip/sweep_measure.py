"""One row of the sweep, measured: the FP32 baseline in onnxruntime, and a quantized model compiled
for x86 and run (accuracy on the labels, the onnxruntime oracle's accuracy, weight bytes and
compression from the compile report, latency of the Relax VM at the compiled batch).

Every sweep mode (`sweep` for PTQ, `sweep_qat`, `sweep_auto`) measures its rows here, so this
module imports none of them: the modes depend on the measurement, never on each other.
"""
from __future__ import annotations

import numpy as np
import onnx

from . import oracle
from .timing import median_ms

COLUMNS = ["point", "mode", "threshold", "sparsity_target", "sparsity", "accuracy", "oracle_accuracy",
           "delta_points", "weight_bytes", "fp32_weight_bytes", "compression", "latency_ms", "speedup"]


def batches(x: np.ndarray, batch: int):
    """Chunks of `batch` images; the last one padded with zeros (the module has a static batch)."""
    for i in range(0, len(x), batch):
        xb = x[i:i + batch]
        if len(xb) < batch:
            xb = np.concatenate([xb, np.zeros((batch - len(xb),) + xb.shape[1:], np.float32)])
        yield xb


def fp32_row(model: onnx.ModelProto, x: np.ndarray, y: np.ndarray, batch: int, runs: int) -> dict:
    """Baseline: the float model in onnxruntime (default session: all cores)."""
    import onnxruntime as ort

    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    pred = np.concatenate([sess.run(None, {name: xb})[0].argmax(1) for xb in batches(x, batch)])[:len(x)]
    acc = float(np.mean(pred == y))
    fp32_bytes = sum(int(np.prod(i.dims)) * 4 for i in model.graph.initializer
                     if i.data_type == onnx.TensorProto.FLOAT and len(i.dims) >= 2)
    xb = next(batches(x, batch))
    ms = median_ms(lambda: sess.run(None, {name: xb}), runs)
    return {"point": "fp32", "mode": "onnxruntime", "threshold": None, "sparsity_target": None, "sparsity": 0.0,
            "accuracy": acc, "oracle_accuracy": acc, "delta_points": 0.0, "weight_bytes": fp32_bytes,
            "fp32_weight_bytes": fp32_bytes, "compression": 1.0, "latency_ms": ms, "speedup": 1.0}


def ternary_sparsity(qreport) -> float | None:
    """Fraction of zeros over all ternary-layer weights (None when no layer is ternary)."""
    t = qreport.ternary_layers()
    n = sum(r.weights for r in t)
    return float(sum(r.sparsity * r.weights for r in t) / n) if n else None


def oracle_accuracy(qmodel, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(oracle.run(qmodel, x).argmax(1) == y))


def measure(qmodel: onnx.ModelProto, qreport, x: np.ndarray, y: np.ndarray, base: dict, *, batch: int,
            runs: int, tuning_log="auto", **fields) -> dict:
    """Compile `qmodel` for x86 and measure one row (see the module docstring)."""
    import tvm
    from tvm import relax

    from .compiler import compile as compile_model

    name = qmodel.graph.input[0].name
    compiled = compile_model(qmodel, "x86", input_shapes={name: (batch,) + tuple(x.shape[1:])},
                             tuning_log=tuning_log)
    vm = relax.VirtualMachine(compiled.executable, tvm.cpu())
    pred = np.concatenate([vm["main"](tvm.runtime.tensor(xb)).numpy().argmax(1) for xb in batches(x, batch)])
    acc = float(np.mean(pred[:len(x)] == y))
    x1 = tvm.runtime.tensor(next(batches(x, batch)))
    ms = median_ms(lambda: vm["main"](x1), runs)
    t = compiled.report.totals()
    row = {"point": "", "mode": "", "threshold": None, "sparsity_target": None, "sparsity": ternary_sparsity(qreport),
           "accuracy": acc, "oracle_accuracy": oracle_accuracy(qmodel, x, y),
           "delta_points": 100.0 * (acc - base["accuracy"]), "weight_bytes": t["weight_bytes"],
           "fp32_weight_bytes": t["fp32_weight_bytes"], "compression": t["compression"], "latency_ms": ms,
           "speedup": base["latency_ms"] / ms}
    row.update(fields)
    return row


def progress(log, row: dict) -> None:
    if log:
        sp = "-" if row["sparsity"] is None else f"{row['sparsity']:.3f}"
        log(f"[sweep] {row['point']}: accuracy {row['accuracy']:.4f} (oracle {row['oracle_accuracy']:.4f}), "
            f"sparsity {sp}, {row['weight_bytes']} B ({row['compression']:.2f}x), "
            f"{row['latency_ms']:.3f} ms ({row['speedup']:.2f}x vs FP32 onnxruntime)")
