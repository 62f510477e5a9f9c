"""Ternary dense in packed form: two bit-planes (ternary_conv2d_packed.pack_bits), 2 bits per
weight, every input visited and selected by its decoded bits."""
from __future__ import annotations

import numpy as np

from .. import weight_sizes
from . import requantize
from .conv_layout import acc_dtype
from .ternary_conv2d_packed import pack_bits, te_bit, unpack_bits

STEM = "ternary_dense_packed"
RULE = "deepchip_" + STEM


def pack(signs: np.ndarray) -> np.ndarray:
    return pack_bits(signs)


def compute(x, planes, consts, epi: requantize.Epilogue, taps: int):
    from tvm import te, tirx

    n, k = (int(s) for s in x.shape)
    co = int(planes.shape[0])
    acc = acc_dtype(x.dtype, taps)
    zero = tirx.const(0, acc)

    def sum_plane(plane, name):
        r = te.reduce_axis((0, k), name=f"k_{name}")
        return te.compute(
            (n, co),
            lambda i, c: te.sum(tirx.Select(te_bit(planes, c, plane, r) != 0, x[i, r].astype(acc), zero), axis=r),
            name=name,
        )

    acc_p, acc_n = sum_plane(0, "acc_p"), sum_plane(1, "acc_n")
    f = requantize.te_apply(epi, acc_p, acc_n, consts, index_channel=lambda idx: idx[1])
    return te.compute((n, co), lambda *i: f(i), name="epilogue", attrs={"schedule_rule": RULE})


def reference(qx: np.ndarray, planes: np.ndarray, epi) -> np.ndarray:
    signs = unpack_bits(planes, qx.shape[1]).astype(np.int64)
    x = qx.astype(np.int64)
    return requantize.np_apply(epi, x @ (signs > 0).T.astype(np.int64), x @ (signs < 0).T.astype(np.int64), channel_axis=1)


def weight_bytes(planes: np.ndarray) -> int:
    """What the kernel reads at run time: the bit-planes."""
    return weight_sizes.bit_planes_bytes(planes.shape[0], planes.shape[2] * weight_sizes.WORD_BITS)
