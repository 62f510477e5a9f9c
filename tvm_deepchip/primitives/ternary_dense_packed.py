"""Ternary dense in packed form: two bit-planes (bit_planes), 2 bits per weight, every input
visited and selected by its decoded bits."""
from __future__ import annotations

import numpy as np

from ..formats import Format
from . import dense_layout, requantize, roles
from .bit_planes import BitPlanes, te_bit, unpack_bits
from .conv_layout import acc_dtype
from .record import Primitive, Site, rule_of

STEM = "ternary_dense_packed"
RULE = rule_of(STEM)


def pack(layer, shape=None, operand=None) -> BitPlanes:
    return BitPlanes.of(layer.codes)


def compute(x, w: BitPlanes, consts, site: Site):
    from tvm import te, tirx

    n, k = (int(s) for s in x.shape)
    planes = w.planes
    co = int(planes.shape[0])
    acc = acc_dtype(x.dtype, w.taps)
    zero = tirx.const(0, acc)

    def sum_plane(plane, name):
        r = te.reduce_axis((0, k), name=f"k_{name}")
        return te.compute(
            (n, co),
            lambda i, c: te.sum(tirx.Select(te_bit(planes, c, plane, r) != 0, x[i, r].astype(acc), zero), axis=r),
            name=name,
            attrs=roles.attrs(roles.ACCUMULATOR),
        )

    acc_p, acc_n = sum_plane(0, "acc_p"), sum_plane(1, "acc_n")
    f = requantize.te_apply(site.epi, acc_p, acc_n, consts, index_channel=lambda idx: idx[1])
    return te.compute((n, co), lambda *i: f(i), name=roles.EPILOGUE_NAME, attrs=roles.epilogue_attrs(RULE))


def reference(qx: np.ndarray, w: BitPlanes, site: Site) -> np.ndarray:
    signs = unpack_bits(w.planes, qx.shape[1]).astype(np.int64)
    x = qx.astype(np.int64)
    return requantize.np_apply(site.epi, x @ (signs > 0).T.astype(np.int64), x @ (signs < 0).T.astype(np.int64),
                               channel_axis=1)


PRIMITIVE = Primitive("dense", Format.PACKED, STEM, "ternary", dense_layout.geometry, pack, compute, reference)
