"""Ternary dense (fully connected) in DeepChip's sparse form.

acc_p[n, c] = sum_j x[n, off_p[c, j]], acc_n likewise over the -1 weights (lists cut into
balanced rows, sparse_rows); the requantizing epilogue applies Wp, Wn, bias and ReLU/Clip. No multiplication in the inner loop; the lists of a
90%-sparse layer touch a tenth of the inputs.
"""
from __future__ import annotations

import numpy as np

from .. import weight_sizes
from . import requantize, sparse_rows
from .conv_layout import acc_dtype
from .dense_layout import np_zero_tail, te_zero_tail

STEM = "ternary_dense_sparse"
RULE = "deepchip_" + STEM


def pack(signs: np.ndarray) -> list[np.ndarray]:
    """[rows_p, rowmap_p, rows_n, rowmap_n]: balanced rows of input indices (sparse_rows)."""
    k = signs.shape[1]
    out = []
    for value in (1, -1):
        out += list(sparse_rows.pack_rows([np.flatnonzero(s == value) for s in signs], k))
    return out


def compute(x, rows_p, map_p, rows_n, map_n, consts, epi: requantize.Epilogue):
    """TE definition. x: [N, K] 8-bit codes; rows/map: sparse_rows tables (index K = zero)."""
    from tvm import te

    n, co = int(x.shape[0]), int(map_p.shape[0])
    xz = te_zero_tail(x)

    def accumulate(rows, rowmap, sign):
        length = int(rows.shape[1])
        row_sum = sparse_rows.te_row_sums(lambda i, pos, off: xz[i, off], rows, (n, int(rows.shape[0])),
                                          acc_dtype(x.dtype, length), f"rows_{sign}")
        wide = acc_dtype(x.dtype, length * int(rowmap.shape[1]))
        return sparse_rows.te_gather_rows(row_sum, rowmap, (n, co), wide, f"acc_{sign}")

    acc_p, acc_n = accumulate(rows_p, map_p, "p"), accumulate(rows_n, map_n, "n")
    f = requantize.te_apply(epi, acc_p, acc_n, consts, index_channel=lambda idx: idx[1])
    return te.compute((n, co), lambda *i: f(i), name="epilogue", attrs={"schedule_rule": RULE})


def reference(qx: np.ndarray, rows_p, map_p, rows_n, map_n, epi) -> np.ndarray:
    xz = np_zero_tail(qx).astype(np.int64)

    def sums(rows, rowmap):
        return xz[:, rows].sum(-1)[:, rowmap].sum(-1)

    return requantize.np_apply(epi, sums(rows_p, map_p), sums(rows_n, map_n), channel_axis=1)


def weight_bytes(rows_p, map_p, rows_n, map_n) -> int:
    """What the kernel reads at run time: the offset rows and row tables as stored."""
    return weight_sizes.index_rows_bytes(rows_p, map_p, rows_n, map_n)
