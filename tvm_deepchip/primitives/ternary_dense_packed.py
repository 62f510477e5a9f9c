"""Ternary dense in packed form: two bit-planes, 2 bits per weight, multiplied by the int8
dot-product instruction (bit_dot: each word of 16 channels x 4 inputs expanded in registers).

    acc_p[n, c] = sum_k x[n, k] * [w[c, k] = +1]      acc_n[n, c] = sum_k x[n, k] * [w[c, k] = -1]
    y[n, c]     = requantize(Wp[c] * acc_p - Wn[c] * acc_n)

Every weight is visited, 64 a VNNI instruction (16 on NEON), in the memory of the index rows at
90% zeros and an eighth of the dot form's byte planes (ternary_dense_dot). A packed conv with few
output positions runs it over its windows (packed_windows). Input codes of the other 8-bit type are
shifted into the operand and the epilogue takes the shift back out (int8_weights.epilogue).
"""
from __future__ import annotations

import numpy as np

from ..formats import Format
from ..parallel_costs import PARALLEL_MIN_MACS
from . import bit_dot, dense_layout, requantize, roles
from .int8_weights import epilogue
from .record import Primitive, Site, rule_of

STEM = "ternary_dense_packed"
RULE = rule_of(STEM)


def pack(layer, shape=None, operand: str = "uint8") -> bit_dot.BitWords:
    return bit_dot.pack(layer.codes, operand)


def compute(x, w: bit_dot.BitWords, consts, site: Site):
    """TE definition. x: [N, K] 8-bit codes; w: the words (bit_dot)."""
    from tvm import te

    y = te_padded(x, w, consts, site)
    return te.compute(site.geo.out_shape(), lambda n, c: y[n, c], name="crop")


def te_padded(x, w: bit_dot.BitWords, consts, site: Site, read=None, rule: str = RULE):
    """The epilogue over the padded channels [N, Co rounded up to 16] (TE; the block carrying
    schedule rule `rule`); `read(i, t)`: input code t of row i (default x[i, t]; a conv's windows:
    packed_windows)."""
    from tvm import te, tirx

    geo = site.geo
    xg = bit_dot.te_groups(geo.n, geo.k, str(x.dtype), w, read or (lambda i, t: x[i, t]))
    cp = int(w.words.shape[0]) * bit_dot.CHANNELS
    macs = len(bit_dot.PLANES) * geo.n * cp * int(w.words.shape[1]) * bit_dot.GROUP
    sums = bit_dot.te_sums(xg, w, site.isa, macs >= PARALLEL_MIN_MACS, geo.n)
    last = geo.co - 1  # padded channels read the last channel's constants; they are cropped
    f = requantize.te_apply(site.epi, lambda n, c: sums[n, 0, c], lambda n, c: sums[n, 1, c], consts,
                            index_channel=lambda idx: tirx.min(idx[1], last))
    return te.compute((geo.n, cp), lambda *i: f(i), name=roles.EPILOGUE_NAME, attrs=roles.epilogue_attrs(rule))


def reference(qx: np.ndarray, w: bit_dot.BitWords, site: Site) -> np.ndarray:
    """numpy: the same shifted codes, the same sums, the same integer epilogue."""
    acc_p, acc_n = bit_dot.np_sums(qx, str(qx.dtype), w, site.geo.co)
    return requantize.np_apply(site.epi, acc_p, acc_n, channel_axis=1)


PRIMITIVE = Primitive("dense", Format.PACKED, STEM, "ternary", dense_layout.geometry, pack, compute, reference, epilogue)
