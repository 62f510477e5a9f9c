"""int8 x 8-bit dense with int32 accumulation: acc[n, c] = sum_k x[n, k] * w[c, k]."""
from __future__ import annotations

import numpy as np

from . import requantize

STEM = "int8_dense"
RULE = "deepchip_" + STEM


def compute(x, w, consts, epi: requantize.Epilogue):
    from tvm import te

    n, k = (int(s) for s in x.shape)
    co = int(w.shape[0])
    r = te.reduce_axis((0, k), name="k")
    acc = te.compute((n, co), lambda i, c: te.sum(x[i, r].astype("int32") * w[c, r].astype("int32"), axis=r), name="acc_p")
    f = requantize.te_apply(epi, acc, None, consts, index_channel=lambda idx: idx[1])
    return te.compute((n, co), lambda *i: f(i), name="epilogue", attrs={"schedule_rule": RULE})


def reference(qx: np.ndarray, w: np.ndarray, epi) -> np.ndarray:
    acc = qx.astype(np.int64) @ w.astype(np.int64).T
    return requantize.np_apply(epi, acc, None, channel_axis=1)


def weight_bytes(w: np.ndarray) -> int:
    return int(w.nbytes)
