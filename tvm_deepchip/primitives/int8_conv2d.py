"""int8 x 8-bit conv2d with int32 accumulation (the first/last layers, and a ternary fallback).

acc[c, p] = sum over taps (ci, ky, kx) of x[p + offset(tap)] * w[c, ci, ky, kx], in int32, over
the same flat padded input as the ternary kernels (one broadcast weight times a vector of
consecutive outputs), then the shared fixed-point epilogue with one multiplier per channel.
"""
from __future__ import annotations

import numpy as np

from . import requantize
from .conv_layout import ConvGeometry, np_windows, te_flat

from ..errors import InputError

STEM = "int8_conv2d"
RULE = "deepchip_" + STEM


def check_bound(in_dtype: str, w: np.ndarray, name: str) -> None:
    """int32 accumulation is exact while sum |x|*|w| < 2^31 for every channel."""
    xmax = 255 if in_dtype == "uint8" else 128
    worst = xmax * np.abs(w.reshape(w.shape[0], -1).astype(np.int64)).sum(1).max()
    if worst >= 2**31:
        raise InputError(f"{name}: int8 layer with K={w[0].size} can overflow an int32 accumulator")


def compute(x, w, consts, geo: ConvGeometry, epi: requantize.Epilogue, zp: int):
    """TE definition. x: [N, Ci, H, W] 8-bit; w: int8 [Co, Ci, KH, KW]."""
    from tvm import te

    xf = te_flat(x, geo, zp)
    hw = geo.hp * geo.wp
    ci = te.reduce_axis((0, geo.ci), name="ci")
    ky = te.reduce_axis((0, geo.kh), name="ky")
    kx = te.reduce_axis((0, geo.kw), name="kx")

    def term(n, c, base):
        v = xf[n, base + ci * hw + ky * geo.wp + kx].astype("int32")
        return te.sum(v * w[c, ci, ky, kx].astype("int32"), axis=[ci, ky, kx])

    if geo.flat:
        acc = te.compute((geo.n, geo.co, geo.out_flat), lambda n, c, p: term(n, c, p), name="acc_p")
    else:
        acc = te.compute((geo.n, geo.co, geo.ho, geo.wo), lambda n, c, y, x_: term(n, c, geo.base(y, x_)), name="acc_p")
    f = requantize.te_apply(epi, acc, None, consts, index_channel=lambda idx: idx[1])
    tag = {"schedule_rule": RULE}
    if not geo.flat:
        return te.compute(geo.out_shape(), lambda *i: f(i), name="epilogue", attrs=tag)
    y = te.compute((geo.n, geo.co, geo.out_flat), lambda *i: f(i), name="epilogue", attrs=tag)
    return te.compute(geo.out_shape(), lambda n, c, oy, ox: y[n, c, oy * geo.wp + ox], name="crop")


def reference(qx: np.ndarray, w: np.ndarray, geo: ConvGeometry, epi, zp: int) -> np.ndarray:
    win = np_windows(qx, geo, zp)  # n, ho, wo, K
    acc = np.einsum("nhwk,ck->nchw", win, w.reshape(geo.co, -1).astype(np.int64))
    return requantize.np_apply(epi, acc, None, channel_axis=1)


def weight_bytes(w: np.ndarray) -> int:
    return int(w.nbytes)
