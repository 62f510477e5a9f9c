"""Ternary conv2d in DeepChip's sparse form: no multiplication in the inner loop.

Weights are stored as two lists of flat input offsets per output channel (conv_layout): the
taps whose weight is +1 and those whose weight is -1. Then

    acc_p[c, p] = sum_j x[p + off_p[c, j]]      acc_n[c, p] = sum_j x[p + off_n[c, j]]
    y[c, p]     = requantize(Wp[c] * acc_p - Wn[c] * acc_n)

Stride 1 runs over flat output positions p = oy*Wp + ox (vectors span rows); other strides over
(oy, ox) with base offset oy*sh*Wp + ox*sw. The accumulator is int16 when 255 * taps fits.
"""
from __future__ import annotations

import numpy as np

from . import requantize
from .conv_layout import ConvGeometry, acc_dtype, np_flat, offset_lists, te_flat

STEM = "ternary_conv2d_sparse"
RULE = "deepchip_" + STEM


def pack(signs: np.ndarray, geo: ConvGeometry) -> tuple[np.ndarray, np.ndarray]:
    return offset_lists(signs, geo, 1), offset_lists(signs, geo, -1)


def compute(x, off_p, off_n, consts, geo: ConvGeometry, epi: requantize.Epilogue, zp: int):
    """TE definition. x: [N, Ci, H, W] 8-bit codes; off_*: int32 [Co, L]; consts: epilogue."""
    from tvm import te

    acc = acc_dtype(x.dtype, max(off_p.shape[1], off_n.shape[1]))
    xf = te_flat(x, geo, zp)
    tag = {"schedule_rule": RULE}

    def sum_taps(off, name):
        j = te.reduce_axis((0, off.shape[1]), name=f"j_{name}")
        if geo.flat:
            return te.compute(
                (geo.n, geo.co, geo.out_flat),
                lambda n, c, p: te.sum(xf[n, p + off[c, j]].astype(acc), axis=j),
                name=name,
            )
        return te.compute(
            (geo.n, geo.co, geo.ho, geo.wo),
            lambda n, c, y, w: te.sum(xf[n, geo.base(y, w) + off[c, j]].astype(acc), axis=j),
            name=name,
        )

    acc_p, acc_n = sum_taps(off_p, "acc_p"), sum_taps(off_n, "acc_n")
    f = requantize.te_apply(epi, acc_p, acc_n, consts, index_channel=lambda idx: idx[1])
    if not geo.flat:
        return te.compute(geo.out_shape(), lambda *i: f(i), name="epilogue", attrs=tag)
    y = te.compute((geo.n, geo.co, geo.out_flat), lambda *i: f(i), name="epilogue", attrs=tag)
    return te.compute(geo.out_shape(), lambda n, c, oy, ox: y[n, c, oy * geo.wp + ox], name="crop")


def reference(qx: np.ndarray, off_p, off_n, geo: ConvGeometry, epi, zp: int) -> np.ndarray:
    """numpy: the same gathers and integer epilogue (accumulated in int64: the bound makes the
    kernel's narrower accumulator exact)."""
    xf = np_flat(qx, geo, zp).astype(np.int64)
    oy, ox = np.meshgrid(np.arange(geo.ho), np.arange(geo.wo), indexing="ij")
    base = geo.base(oy, ox).reshape(-1)  # [Ho*Wo]

    def sums(off):  # [N, Co, Ho*Wo]
        idx = base[None, :, None] + off[:, None, :]  # Co, P, L
        return xf[:, idx].sum(-1)

    y = requantize.np_apply(epi, sums(off_p), sums(off_n), channel_axis=1)
    return y.reshape(geo.out_shape())


def weight_bytes(off_p: np.ndarray, off_n: np.ndarray) -> int:
    """What the kernel reads at run time: the offset lists as stored (int32, padded)."""
    return int(off_p.nbytes + off_n.nbytes)
