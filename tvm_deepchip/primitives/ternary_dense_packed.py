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
from . import bit_dot, dense_layout, requantize, roles
from .int8_weights import epilogue
from .record import Primitive, Site, rule_of

STEM = "ternary_dense_packed"
RULE = rule_of(STEM)


def pack(layer, shape=None, operand: str = "uint8") -> bit_dot.BitWords:
    return bit_dot.pack(layer.codes, operand)


def compute(x, w: bit_dot.BitWords, consts, site: Site, rule: str = RULE):
    """TE definition. x: [N, K] 8-bit codes; w: the words (bit_dot; binary ones: bwn_dense)."""
    from tvm import te

    geo = site.geo
    y = te_epilogue(bit_dot.te_sums(bit_dot.te_groups(x, w), w, site.isa, geo.n), consts, site.epi, geo.co, rule)
    return te.compute(geo.out_shape(), lambda n, c: y[n, c], name="crop")


def te_epilogue(sums, consts, epi, co: int, rule: str = RULE):
    """The epilogue [M, Cp] of bit_dot's sums [M, planes, Cp] (TE; the block carrying the schedule
    rule `rule`): the packed dense layer's, a packed conv's over its windows (packed_windows), and
    the binary-weight forms' (one plane: the signed sum, an int8 layer's epilogue, which reads no
    second accumulator)."""
    from tvm import te, tirx

    last = co - 1  # padded channels read the last channel's constants; they are cropped
    acc_n = (lambda r, c: sums[r, 1, c]) if int(sums.shape[1]) > 1 else None  # (one plane: none to read)
    f = requantize.te_apply(epi, lambda r, c: sums[r, 0, c], acc_n, consts,
                            index_channel=lambda idx: tirx.min(idx[1], last))
    shape = (int(sums.shape[0]), int(sums.shape[2]))
    return te.compute(shape, lambda *i: f(i), name=roles.EPILOGUE_NAME, attrs=roles.epilogue_attrs(rule))


def np_epilogue(epi, sums: list) -> np.ndarray:
    """numpy: te_epilogue of bit_dot.np_sums' sums [M, Co] (two planes or one)."""
    return requantize.np_apply(epi, sums[0], sums[1] if len(sums) > 1 else None, channel_axis=1)


def reference(qx: np.ndarray, w: bit_dot.BitWords, site: Site) -> np.ndarray:
    """numpy: the same shifted codes, the same sums, the same integer epilogue."""
    return np_epilogue(site.epi, bit_dot.np_sums(qx, str(qx.dtype), w, site.geo.co))


PRIMITIVE = Primitive("dense", Format.PACKED, STEM, "ternary", dense_layout.geometry, pack, compute, reference, epilogue)
