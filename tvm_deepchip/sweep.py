"""The accuracy / efficiency trade-off: one row per operating point of a quantized model.

Every point is measured the same way: quantize (post-training at a threshold or target sparsity,
or from a QAT-trained model), compile for x86, run the test images through the compiled module
(accuracy against the labels), take weight bytes and compression against FP32 from the compile
report (what the deployed kernels read at run time), and time the Relax VM at the compiled batch.
The baseline row is the FP32 model in onnxruntime (accuracy and latency, same batch, same machine).
Modes: `ptq` (any float model), `qat` (the bundled digits network, needs torch, see `sweep_qat`),
and the automatic per-layer search (`sweep_auto`). How one row is measured is `sweep_measure`
(which the modes share and which imports none of them).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from . import onnx_io
from .errors import InputError
from .sweep_measure import COLUMNS, fp32_row, measure, progress  # noqa: F401 (COLUMNS: the rows' keys)

def load_images(path, need_labels: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Images (key `x`, or the first array) and labels (key `y`, or the second) from an .npz."""
    path = Path(path)
    try:
        f = np.load(path)
    except (OSError, ValueError) as err:
        raise InputError(f"{path}: cannot read images ({err}); expected an .npz with arrays x [N,...] and y [N]") from None
    files = list(f.files) if hasattr(f, "files") else []
    if not files:
        raise InputError(f"{path}: expected an .npz with arrays x [N, ...] (and y [N] for test data)")
    x = f["x"] if "x" in files else f[files[0]]
    if not need_labels:
        return x.astype(np.float32), None
    rest = [k for k in files if k != ("x" if "x" in files else files[0])]
    if "y" not in files and not rest:
        raise InputError(f"{path}: test data needs labels: an array y [N] next to x")
    y = f["y"] if "y" in files else f[rest[0]]
    y = np.asarray(y).reshape(-1)
    if len(y) != len(x):
        raise InputError(f"{path}: {len(x)} images but {len(y)} labels")
    return x.astype(np.float32), y


def n_classes(model: onnx.ModelProto) -> int | None:
    """The static size of the first output's last dimension (the logits), if the model says it."""
    dims = model.graph.output[0].type.tensor_type.shape.dim
    if not dims or not dims[-1].HasField("dim_value"):
        dims = onnx.shape_inference.infer_shapes(model).graph.output[0].type.tensor_type.shape.dim
    return dims[-1].dim_value if dims and dims[-1].HasField("dim_value") and dims[-1].dim_value > 0 else None


def check_data(model: onnx.ModelProto, x_calib: np.ndarray, x: np.ndarray, y: np.ndarray, where: dict) -> None:
    """Images that fit the model's input and labels that are class indices of its output, checked
    before anything is quantized, compiled or run (InputError naming the file)."""
    from .calibrate import model_input

    name, shape = model_input(model)
    if len(y) != len(x):
        raise InputError(f"{where['test']}: {len(x)} images but {len(y)} labels")
    for what, images in (("calib", x_calib), ("test", x)):
        if images.ndim != len(shape) or any(d is not None and d != g for d, g in zip(shape[1:], images.shape[1:])):
            want = ", ".join("N" if d is None or i == 0 else str(d) for i, d in enumerate(shape))
            raise InputError(f"{where[what]}: images of shape {list(images.shape)}; the model input {name!r} "
                             f"needs [{want}]")
    if not (np.issubdtype(y.dtype, np.integer) or y.dtype == bool):
        raise InputError(f"{where['test']}: labels have dtype {y.dtype}; expected integer class indices "
                         f"(e.g. y.astype(np.int64))")
    k = n_classes(model)
    bad = (y < 0) | (y >= k) if k else y < 0
    if np.any(bad):
        raise InputError(f"{where['test']}: label {y[bad][0]} is not a class index"
                         + (f" of the model's {k} outputs (expected 0..{k - 1})" if k else " (expected >= 0)"))


def model_batch(model: onnx.ModelProto, default: int) -> int:
    """The model's static batch (first input, first dimension), or `default` when it is dynamic."""
    dim = model.graph.input[0].type.tensor_type.shape.dim
    return dim[0].dim_value if dim and dim[0].HasField("dim_value") and dim[0].dim_value > 0 else default


def ptq_rows(model, x_calib, x, y, base, *, thresholds=None, sparsities=None, batch, runs,
             tuning_log="auto", per_channel=False, log=None) -> list[dict]:
    """Post-training quantization at each threshold (or target sparsity)."""
    from .quantizer import quantize

    grid = [("threshold", t) for t in thresholds or []] + [("sparsity", s) for s in sparsities or []]
    rows = []
    for kind, v in grid:
        opts = {"threshold": v} if kind == "threshold" else {"sparsity": v}
        qmodel, qreport = quantize(model, calib=x_calib, per_channel=per_channel, **opts)
        row = measure(qmodel, qreport, x, y, base, batch=batch, runs=runs, tuning_log=tuning_log,
                      point=f"ptq {kind[0]}={v:g}", mode="ptq", threshold=v if kind == "threshold" else None,
                      sparsity_target=v if kind == "sparsity" else None)
        progress(log, row)
        rows.append(row)
    return rows


def _check_grid(thresholds, sparsities, steps, batch, runs) -> None:
    for what, vals in (("sparsities", sparsities), ("steps", steps)):
        bad = [v for v in vals or [] if not 0 < v < 1]
        if bad:
            raise InputError(f"--{what} {bad[0]:g}: expected fractions in (0, 1) (0 leaves binary, not ternary, weights)")
    bad = [t for t in thresholds or [] if not (t > 0 and np.isfinite(t))]
    if bad:
        raise InputError(f"--thresholds {bad[0]:g}: expected t > 0 (zeros where |w| <= t*max|W|)")
    for what, v in (("batch", batch), ("runs", runs)):
        if v < 1:
            raise InputError(f"--{what} {v}: expected a whole number >= 1")


def sweep(model_path, calib, test, *, mode="ptq", thresholds=None, sparsities=None, auto=False,
          budget=0.5, batch=1, runs=200, tuning_log="auto", per_channel=False, epochs=None,
          max_steps=None, steps=None, seed=0, fp32_start="auto", log=None) -> dict:
    """Run the sweep; returns {"baseline": row, "rows": [...], "auto": {...} | None, "options": {...}}.

    model_path: the float ONNX model (for qat: the FP32 digits model). calib/test: .npz paths or
    arrays ((x) and (x, y)). budget: accuracy points below FP32 allowed in the automatic mode.
    fp32_start (qat): where training starts, see `sweep_qat.qat_rows`."""
    if mode not in ("ptq", "qat"):
        raise InputError(f"mode {mode!r}: expected 'ptq' or 'qat'")
    model = onnx_io.load_model(model_path)
    x_calib = calib if isinstance(calib, np.ndarray) else load_images(calib, False)[0]
    x, y = test if isinstance(test, tuple) else load_images(test, True)
    x_calib, x, y = np.asarray(x_calib, np.float32), np.asarray(x, np.float32), np.asarray(y).reshape(-1)
    check_data(model, x_calib, x, y, {"calib": "calibration data" if isinstance(calib, np.ndarray) else str(calib),
                                      "test": "test data" if isinstance(test, tuple) else str(test)})
    y = y.astype(np.int64)
    if not thresholds and not sparsities and not auto:
        raise InputError("nothing to sweep: give thresholds or sparsities (or auto)")
    if mode == "qat" and thresholds:
        raise InputError("qat mode sweeps target sparsities (QAT trains to a sparsity, not a threshold)")
    _check_grid(thresholds, sparsities, steps, batch, runs)
    batch = model_batch(model, batch)
    base = fp32_row(model, x, y, batch, runs)
    if log:
        log(f"[sweep] fp32 (onnxruntime): accuracy {base['accuracy']:.4f}, {base['latency_ms']:.3f} ms at batch {batch}")
    common = dict(batch=batch, runs=runs, tuning_log=tuning_log, log=log)
    if mode == "ptq":
        rows = ptq_rows(model, x_calib, x, y, base, thresholds=thresholds, sparsities=sparsities,
                        per_channel=per_channel, **common)
    else:
        from .sweep_qat import qat_rows

        rows = qat_rows(model_path, x_calib, x, y, base, sparsities=sparsities or [], epochs=epochs,
                        max_steps=max_steps, seed=seed, fp32_start=fp32_start, **common)
    auto_result = None
    if auto:
        from . import sweep_auto

        if mode == "ptq":
            auto_result = sweep_auto.search(model, x_calib, x, y, base, budget=budget, steps=steps,
                                            per_channel=per_channel, **common)
            rows.append(auto_result.pop("row"))
        else:
            auto_result = sweep_auto.pick(rows, base, budget)
    opts = dict(model=str(model_path), mode=mode, thresholds=thresholds, sparsities=sparsities, auto=auto,
                budget=budget if auto else None, batch=batch, runs=runs, tuning_log=tuning_log,
                per_channel=per_channel, epochs=epochs, max_steps=max_steps, seed=seed,
                fp32_start=fp32_start if mode == "qat" else None, test_images=len(x),
                calib_images=len(x_calib))
    return {"baseline": base, "rows": rows, "auto": auto_result, "options": opts}
