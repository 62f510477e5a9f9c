"""Ternary dense (fully connected) in DeepChip's sparse form.

acc_p[n, c] = sum_j x[n, off_p[c, j]], acc_n likewise over the -1 weights; the requantizing
epilogue applies Wp, Wn, bias and ReLU/Clip. No multiplication in the inner loop; the lists of a
90%-sparse layer touch a tenth of the inputs.
"""
from __future__ import annotations

import numpy as np

from . import requantize
from .conv_layout import acc_dtype
from .dense_layout import np_zero_tail, offset_lists, te_zero_tail

STEM = "ternary_dense_sparse"
RULE = "deepchip_" + STEM


def pack(signs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return offset_lists(signs, 1), offset_lists(signs, -1)


def compute(x, off_p, off_n, consts, epi: requantize.Epilogue):
    """TE definition. x: [N, K] 8-bit codes; off_*: int32 [Co, L]."""
    from tvm import te

    n, co = int(x.shape[0]), int(off_p.shape[0])
    acc = acc_dtype(x.dtype, max(off_p.shape[1], off_n.shape[1]))
    xz = te_zero_tail(x)

    def sum_taps(off, name):
        j = te.reduce_axis((0, off.shape[1]), name=f"j_{name}")
        return te.compute((n, co), lambda i, c: te.sum(xz[i, off[c, j]].astype(acc), axis=j), name=name)

    acc_p, acc_n = sum_taps(off_p, "acc_p"), sum_taps(off_n, "acc_n")
    f = requantize.te_apply(epi, acc_p, acc_n, consts, index_channel=lambda idx: idx[1])
    return te.compute((n, co), lambda *i: f(i), name="epilogue", attrs={"schedule_rule": RULE})


def reference(qx: np.ndarray, off_p, off_n, epi) -> np.ndarray:
    xz = np_zero_tail(qx).astype(np.int64)
    return requantize.np_apply(epi, xz[:, off_p].sum(-1), xz[:, off_n].sum(-1), channel_axis=1)


def weight_bytes(off_p: np.ndarray, off_n: np.ndarray) -> int:
    return int(off_p.nbytes + off_n.nbytes)
