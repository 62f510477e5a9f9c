"""Calibration: run the (weight-quantized) float model in onnxruntime on calibration images and
collect the range of every activation that gets a QuantizeLinear/DequantizeLinear pair.

Methods: "minmax" (the observed min and max) and "percentile" (the p-th and (100-p)-th
percentiles, which ignores rare outliers and so gives a finer scale to the bulk of the values).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from .errors import InputError

log = logging.getLogger(__name__)

# Percentiles are taken over at most this many values per tensor (a random subset), so large
# calibration sets of large models do not hold every activation in memory.
MAX_SAMPLES = 2_000_000
DEFAULT_IMAGES = 16


def model_input(model: onnx.ModelProto):
    """(name, shape with None for dynamic dims) of the model's single data input."""
    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise InputError(f"the quantizer handles models with one input; this one has {[i.name for i in inputs]}")
    inp = inputs[0]
    if inp.type.tensor_type.elem_type != TensorProto.FLOAT:
        raise InputError(f"input {inp.name!r} is {TensorProto.DataType.Name(inp.type.tensor_type.elem_type)}, "
                         "the quantizer expects a float32 model")
    shape = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
             for d in inp.type.tensor_type.shape.dim]
    return inp.name, shape


def _fmt(shape):
    return "[" + ", ".join("N" if d is None else str(d) for d in shape) + "]"


def load_calibration(calib, model: onnx.ModelProto, seed: int = 0) -> np.ndarray:
    """Calibration images as float32 [N, ...] checked against the model input.

    `calib`: an array, a path to .npz (the array named like the model input, else 'x', else the
    first one) or .npy, or None (16 random [0, 1) images, with a warning: ranges from random
    data are only good for smoke tests)."""
    name, shape = model_input(model)
    if calib is None:
        log.warning("no calibration data given: using %d random uniform [0, 1) images of shape %s; "
                    "pass real images (--calib FILE.npz) for meaningful activation scales", DEFAULT_IMAGES, _fmt(shape))
        dims = [DEFAULT_IMAGES] + [d if d is not None else 1 for d in shape[1:]]
        return np.random.default_rng(seed).random(dims, dtype=np.float32)
    where = "calibration data"
    if isinstance(calib, (str, os.PathLike)):
        path = Path(calib)
        where = f"calibration file {path}"
        if not path.is_file():
            raise InputError(f"{where}: no such file")
        try:
            loaded = np.load(path, allow_pickle=False)
        except Exception as err:
            raise InputError(f"{where}: not a .npz/.npy file ({type(err).__name__}: {err})") from None
        if isinstance(loaded, np.lib.npyio.NpzFile):
            if not loaded.files:
                raise InputError(f"{where}: holds no arrays (empty calibration set)")
            key = name if name in loaded.files else ("x" if "x" in loaded.files else loaded.files[0])
            calib = loaded[key]
            where = f"{where} (array {key!r})"
        else:
            calib = loaded
    calib = np.asarray(calib)
    if calib.size == 0 or calib.ndim == 0 or calib.shape[0] == 0:
        raise InputError(f"{where} is empty (shape {list(calib.shape)}); the model input "
                         f"{name!r} needs images of shape {_fmt(shape)}")
    if not np.issubdtype(calib.dtype, np.floating):
        raise InputError(f"{where} has dtype {calib.dtype}; the model input {name!r} is float32 "
                         "(scale the images to floats as the float model expects them)")
    if calib.ndim != len(shape) or any(d is not None and d != c for d, c in zip(shape[1:], calib.shape[1:])):
        raise InputError(f"{where} has shape {list(calib.shape)}; the model input {name!r} has shape "
                         f"{_fmt(shape)} (expected [N, {', '.join('?' if d is None else str(d) for d in shape[1:])}])")
    if not np.all(np.isfinite(calib)):
        raise InputError(f"{where} holds NaN or infinite values")
    if calib.min() == calib.max():
        log.warning("%s is constant (every value is %g): the input's range is empty, so its quantization scale "
                    "and every activation range after it mean nothing; pass real images", where, float(calib.flat[0]))
    return np.ascontiguousarray(calib, dtype=np.float32)


def _batches(x: np.ndarray, batch: int | None):
    """Chunks of the model's static batch size (the last one padded with the first images, which
    adds no new values to the ranges), or of 32 for a dynamic batch."""
    step = batch or 32
    for i in range(0, len(x), step):
        xb = x[i:i + step]
        if batch and len(xb) < batch:
            xb = np.concatenate([xb, np.resize(x, (batch - len(xb),) + x.shape[1:])])
        yield xb


def collect_ranges(model: onnx.ModelProto, tensors: list[str], x: np.ndarray, method: str = "minmax",
                   percentile: float = 99.99, seed: int = 0) -> dict[str, tuple[float, float]]:
    """Tensor name -> (lo, hi) over the calibration images `x`."""
    import onnxruntime as ort

    if method not in ("minmax", "percentile"):
        raise InputError(f"calibration method {method!r}: expected 'minmax' or 'percentile'")
    if not 50 < percentile <= 100:
        raise InputError(f"percentile {percentile}: expected a value in (50, 100]")
    name, shape = model_input(model)
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    have = {o.name for o in probe.graph.output}
    wanted = [t for t in tensors if t != name]
    for t in wanted:
        if t not in have:
            probe.graph.output.append(helper.make_tensor_value_info(t, TensorProto.FLOAT, None))
    sess = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    mins = {t: np.inf for t in tensors}
    maxs = {t: -np.inf for t in tensors}
    samples: dict[str, list] = {t: [] for t in tensors}
    per_batch = max(MAX_SAMPLES * (shape[0] or 32) // max(len(x), 1), 1)
    for xb in _batches(x, shape[0]):
        outs = dict(zip(wanted, sess.run(wanted, {name: xb}))) if wanted else {}
        outs[name] = xb
        for t in tensors:
            v = np.asarray(outs[t], np.float32).ravel()
            mins[t] = min(mins[t], float(v.min()))
            maxs[t] = max(maxs[t], float(v.max()))
            if method == "percentile":
                samples[t].append(v if v.size <= per_batch else rng.choice(v, per_batch, replace=False))
    if method == "minmax":
        return {t: (mins[t], maxs[t]) for t in tensors}
    ranges = {}
    for t in tensors:
        v = np.concatenate(samples[t])
        ranges[t] = (float(np.percentile(v, 100 - percentile)), float(np.percentile(v, percentile)))
    return ranges
