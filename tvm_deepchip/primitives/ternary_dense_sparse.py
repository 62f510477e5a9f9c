"""Ternary dense (fully connected) in DeepChip's sparse form.

acc_p[n, c] = sum_j x[n, off_p[c, j]], acc_n likewise over the -1 weights (lists cut into
balanced rows, sparse_rows); the requantizing epilogue applies Wp, Wn, bias and ReLU/Clip. No multiplication in the inner loop; the lists of a
90%-sparse layer touch a tenth of the inputs.
"""
from __future__ import annotations

import numpy as np

from ..formats import Format
from . import dense_layout, requantize, roles, sparse_rows
from .dense_layout import np_zero_tail, te_zero_tail
from .record import Primitive, Site, rule_of
from .sparse_rows import SignedRows

STEM = "ternary_dense_sparse"
RULE = rule_of(STEM)


def pack_signs(signs: np.ndarray) -> SignedRows:
    """Balanced rows of input indices (sparse_rows), padded with K: the zero after the input."""
    return SignedRows.of(signs, lambda s, value: np.flatnonzero(s == value), signs.shape[1])


def pack(layer, shape=None, operand=None) -> SignedRows:
    return pack_signs(layer.codes)


def compute(x, w: SignedRows, consts, site: Site):
    """TE definition. x: [N, K] 8-bit codes; w: sparse_rows tables (index K = zero)."""
    from tvm import te

    n, co = int(x.shape[0]), int(w.map_p.shape[0])
    xz = te_zero_tail(x)
    acc_p, acc_n = sparse_rows.te_signed_sums(lambda i, pos, off: xz[i, off], w, (n, co), (), x.dtype)
    f = requantize.te_apply(site.epi, acc_p, acc_n, consts, index_channel=lambda idx: idx[1])
    return te.compute((n, co), lambda *i: f(i), name=roles.EPILOGUE_NAME, attrs=roles.epilogue_attrs(RULE))


def reference(qx: np.ndarray, w: SignedRows, site: Site) -> np.ndarray:
    xz = np_zero_tail(qx).astype(np.int64)

    def sums(rows, rowmap):
        return xz[:, sparse_rows.np_offsets(rows)].sum(-1)[:, rowmap].sum(-1)

    return requantize.np_apply(site.epi, sums(w.rows_p, w.map_p), sums(w.rows_n, w.map_n), channel_axis=1)


PRIMITIVE = Primitive("dense", Format.SPARSE, STEM, "ternary", dense_layout.geometry, pack, compute, reference)
