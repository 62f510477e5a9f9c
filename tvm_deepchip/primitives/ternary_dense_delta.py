"""Ternary dense (fully connected) over delta lists: 8-bit relative indices, walked in place.

acc_p[n, c] = sum of x[n, k] over channel c's +1 taps, acc_n over its -1 taps, each tap found
by adding the next gap of its list (delta_lists) to the last one; the requantizing epilogue
(inside the walk) applies Wp, Wn, bias and ReLU/Clip. No multiplication, and a byte a non-zero weight.
Where the input's zero codes are zero values (a ReLU's output), the lists run by input and the
zero inputs are skipped (column_lists, column_walk), if that takes no more bytes.
"""
from __future__ import annotations

import numpy as np

from ..formats import Format
from ..parallel_costs import PARALLEL_MIN_GATHERS
from . import column_lists, column_walk, dense_layout, requantize
from .conv_layout import acc_dtype
from .delta_lists import DeltaLists, np_signed_sums
from .delta_walk import Finish, Walk, point_lists, te_walk
from .dense_layout import te_slotted
from .record import Primitive, Site, rule_of

STEM = "ternary_dense_delta"
RULE = rule_of(STEM)


def pack(layer, shape=None, operand=None):
    """Delta lists by channel, or by input where the input skips zeros (column_lists)."""
    return column_lists.pick(layer.codes, layer, lambda: point_lists(layer.codes), shape.n if shape else 1)


def compute(x, w: DeltaLists, consts, site: Site):
    """TE definition. x: [N, K] 8-bit codes; w: the delta lists (te.extern walk, epilogue inside)."""
    n, co, k = int(x.shape[0]), site.geo.co, site.geo.k
    if isinstance(w, column_lists.ColumnLists):  # the inputs' lists, zeros skipped; the epilogue after
        return column_walk.te_layer(x, w, site, consts, (n, co), RULE)
    walk = Walk(lead=(n, co), space=(), outer=(), lanes=1, acc=acc_dtype(x.dtype, w.longest),
                parallel=w.entries * n >= PARALLEL_MIN_GATHERS, tap_offset=lambda t: t, zero=0)
    return te_walk(te_slotted(x, k), w, walk, Finish(site.epi, consts, RULE))  # pads and hops read its zero slots


def reference(qx: np.ndarray, w: DeltaLists, site: Site) -> np.ndarray:
    xs = qx.astype(np.int64)
    acc_p, acc_n = np_signed_sums(lambda taps: xs[:, taps].sum(-1), w)
    return requantize.np_apply(site.epi, acc_p, acc_n, channel_axis=1)


PRIMITIVE = Primitive("dense", Format.DELTA, STEM, "ternary", dense_layout.geometry, pack, compute, reference)
