"""int8 x 8-bit dense with int32 accumulation: acc[n, c] = sum_k x[n, k] * w[c, k]."""
from __future__ import annotations

import numpy as np

from ..formats import Format
from . import dense_layout, requantize, roles
from .int8_weights import Int8Weights, check_bound
from .record import Primitive, Site, rule_of

STEM = "int8_dense"
RULE = rule_of(STEM)


def pack(layer, shape=None, operand=None) -> Int8Weights:
    """The weights as they are ([Co, K] int8), checked to sum exactly in int32."""
    check_bound(layer.in_dtype, layer.codes, layer.name)
    return Int8Weights(layer.codes.astype(np.int8))


def compute(x, weights: Int8Weights, consts, site: Site):
    from tvm import te

    w = weights.w
    n, k = (int(s) for s in x.shape)
    co = int(w.shape[0])
    r = te.reduce_axis((0, k), name="k")
    acc = te.compute((n, co), lambda i, c: te.sum(x[i, r].astype("int32") * w[c, r].astype("int32"), axis=r),
                     name="acc", attrs=roles.attrs(roles.ACCUMULATOR))
    f = requantize.te_apply(site.epi, acc, None, consts, index_channel=lambda idx: idx[1])
    return te.compute((n, co), lambda *i: f(i), name=roles.EPILOGUE_NAME, attrs=roles.epilogue_attrs(RULE))


def reference(qx: np.ndarray, weights: Int8Weights, site: Site) -> np.ndarray:
    acc = qx.astype(np.int64) @ weights.w.astype(np.int64).T
    return requantize.np_apply(site.epi, acc, None, channel_axis=1)


PRIMITIVE = Primitive("dense", Format.INT8, STEM, "int8", dense_layout.geometry, pack, compute, reference)
