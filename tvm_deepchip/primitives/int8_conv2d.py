"""int8 x 8-bit conv2d with int32 accumulation (the first/last layers, and a ternary fallback).

acc[c, p] = sum over taps (ci, ky, kx) of x[p + offset(tap)] * w[c, ci, ky, kx], in int32, over
the same flat padded input as the ternary kernels (one broadcast weight times a vector of
consecutive outputs), then the shared fixed-point epilogue with one multiplier per channel.
"""
from __future__ import annotations

import numpy as np

from . import requantize
from .conv_layout import ConvGeometry, np_windows, position, space, te_dense_taps, te_flat, te_output

from ..errors import InputError

STEM = "int8_conv2d"
RULE = "deepchip_" + STEM


def check_bound(in_dtype: str, w: np.ndarray, name: str) -> None:
    """int32 accumulation is exact while sum |x|*|w| < 2^31 for every channel."""
    xmax = 255 if in_dtype == "uint8" else 128
    worst = xmax * np.abs(w.reshape(w.shape[0], -1).astype(np.int64)).sum(1).max()
    if worst >= 2**31:
        raise InputError(f"{name}: int8 layer with K={w[0].size} can overflow an int32 accumulator")


def pack(w: np.ndarray, geo: ConvGeometry) -> np.ndarray:
    """int8 [Co, Ci, sh, sw, KHq, KWq]: taps in the kernel's reduction order (conv_layout)."""
    return geo.phase_kernel(w.astype(np.int8))


def compute(x, w, consts, geo: ConvGeometry, epi: requantize.Epilogue, zp: int):
    """TE definition. x: [N, Ci, H, W] 8-bit; w: int8 from `pack`."""
    from tvm import te

    xf = te_flat(x, geo, zp)
    axes, offset = te_dense_taps(geo, "acc")
    ci, kyr, kxr, kyq, kxq = axes

    def term(n, c, *pos):
        v = xf[n, position(geo, pos) + offset].astype("int32")
        return te.sum(v * w[c, ci, kyr, kxr, kyq, kxq].astype("int32"), axis=axes)

    acc = te.compute((geo.n, geo.co, *space(geo)), term, name="acc_p")
    f = requantize.te_apply(epi, acc, None, consts, index_channel=lambda idx: idx[1])
    tag = {"schedule_rule": RULE}
    return te_output(te.compute((geo.n, geo.co, *space(geo)), lambda *i: f(i), name="epilogue", attrs=tag), geo)


def reference(qx: np.ndarray, w: np.ndarray, geo: ConvGeometry, epi, zp: int) -> np.ndarray:
    win = np_windows(qx, geo, zp)  # n, ho, wo, K
    acc = np.einsum("nhwk,ck->nchw", win, geo.unphase_kernel(w).reshape(geo.co, -1).astype(np.int64))
    return requantize.np_apply(epi, acc, None, channel_axis=1)


def weight_bytes(w: np.ndarray) -> int:
    return int(w.nbytes)
