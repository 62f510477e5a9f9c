"""Ternary conv2d in DeepChip's sparse form: no multiplication in the inner loop.

Weights are stored as two lists of flat input offsets per output channel (conv_layout): the
taps whose weight is +1 and those whose weight is -1, cut into balanced rows (sparse_rows).

    acc_p[c, p] = sum_j x[p + off_p[c, j]]      acc_n[c, p] = sum_j x[p + off_n[c, j]]
    y[c, p]     = requantize(Wp[c] * acc_p - Wn[c] * acc_n)

Outputs are flat positions p = oy*Wq + ox of conv_layout's (phase-split) image, so vectors span
rows at any stride; tiny outputs iterate (oy, ox). The accumulator is int16 when 255 * taps fits.
"""
from __future__ import annotations

import numpy as np

from .. import weight_sizes
from . import requantize, sparse_rows
from .conv_layout import ConvGeometry, acc_dtype, np_flat, position, space, te_flat, te_output

STEM = "ternary_conv2d_sparse"
RULE = "deepchip_" + STEM


def pack(signs: np.ndarray, geo: ConvGeometry) -> list[np.ndarray]:
    """[rows_p, rowmap_p, rows_n, rowmap_n]: balanced rows of flat tap offsets."""
    taps = geo.tap_offsets().reshape(-1)
    out = []
    for value in (1, -1):
        lists = [taps[s.reshape(-1) == value] for s in signs]
        out += list(sparse_rows.pack_rows(lists, geo.image))
    return out


def compute(x, rows_p, map_p, rows_n, map_n, consts, geo: ConvGeometry, epi: requantize.Epilogue, zp: int):
    """TE definition. x: [N, Ci, H, W] 8-bit codes; rows/map: sparse_rows tables; consts: epilogue."""
    from tvm import te

    xf = te_flat(x, geo, zp)
    tag = {"schedule_rule": RULE}
    out_space = space(geo)

    def read(n, pos, off):
        return xf[n, position(geo, pos) + off]

    def accumulate(rows, rowmap, sign):
        length = int(rows.shape[1])
        row_sum = sparse_rows.te_row_sums(read, rows, (geo.n, int(rows.shape[0]), *out_space), acc_dtype(x.dtype, length), f"rows_{sign}")
        wide = acc_dtype(x.dtype, length * int(rowmap.shape[1]))
        return sparse_rows.te_gather_rows(row_sum, rowmap, (geo.n, geo.co, *out_space), wide, f"acc_{sign}")

    acc_p, acc_n = accumulate(rows_p, map_p, "p"), accumulate(rows_n, map_n, "n")
    f = requantize.te_apply(epi, acc_p, acc_n, consts, index_channel=lambda idx: idx[1])
    return te_output(te.compute((geo.n, geo.co, *out_space), lambda *i: f(i), name="epilogue", attrs=tag), geo)


def reference(qx: np.ndarray, rows_p, map_p, rows_n, map_n, geo: ConvGeometry, epi, zp: int) -> np.ndarray:
    """numpy: the same row sums, gathers and integer epilogue (accumulated in int64: the
    bound makes the kernel's narrower accumulators exact)."""
    xf = np_flat(qx, geo, zp).astype(np.int64)
    oy, ox = np.meshgrid(np.arange(geo.ho), np.arange(geo.wo), indexing="ij")
    base = geo.base(oy, ox).reshape(-1)  # [Ho*Wo]

    def sums(rows, rowmap):  # [N, Co, Ho*Wo]
        row_sum = xf[:, base[None, :, None] + rows[:, None, :]].sum(-1)  # N, R, P
        return row_sum[:, rowmap, :].sum(2)

    y = requantize.np_apply(epi, sums(rows_p, map_p), sums(rows_n, map_n), channel_axis=1)
    return y.reshape(geo.out_shape())


def weight_bytes(rows_p, map_p, rows_n, map_n) -> int:
    """What the kernel reads at run time: the offset rows and row tables as stored."""
    return weight_sizes.index_rows_bytes(rows_p, map_p, rows_n, map_n)
