"""A packed ternary conv on few output positions: each position's window is a row of the bit-plane
dot product (bit_dot), so each expanded word of 16 channels x 4 taps serves every position at
once. The windows are read in place from the grouped flat layout of the int8 conv
(conv_layout.te_flat with 4 channels a position, zero-point padded, in the operand type): one
4-byte load a position and word, at the position's base plus the tap's offset; the words hold
the taps in that order (_ordered). Epilogue and schedule are the packed dense layer's.

Where it pays: maps of a few positions (the bundled digits model's 2x2 maps after its pools).
The spatial forms walk such a map one short vector a tap (4 useful lanes of 16 on a 2x2 output):
there a tap costs a cycle whatever the lanes do; here 64 weights (zeros included) cost one dot
product a position. A conv whose kernel covers its input is the one-position case.
"""
from __future__ import annotations

import numpy as np

from . import bit_dot, grouped_layout, ternary_dense_packed
from .bit_dot import GROUP
from .conv_layout import ConvGeometry, np_windows
from .record import Site

MAX_POSITIONS = 4  # output positions of an image up to which a packed conv runs its windows


def covers(geo: ConvGeometry, max_positions: int = MAX_POSITIONS) -> bool:
    """The packed conv of this geometry runs as windows (few output positions)."""
    return geo.ho * geo.wo <= max_positions


def _ordered(codes: np.ndarray, geo: ConvGeometry) -> np.ndarray:
    """[Co, Ci, KH, KW] -> [Co, K']: the taps in the order the kernel reads the grouped flat layout
    (conv_layout.te_flat with groups of 4 channels): channel group, phase taps, then the 4 channels
    of the group (channels padded with zero weights)."""
    k = geo.phase_kernel(codes)  # Co, Ci, sh, sw, KHq, KWq
    cg = -(-geo.ci // GROUP)
    k = np.pad(k, ((0, 0), (0, cg * GROUP - geo.ci)) + ((0, 0),) * 4)
    k = k.reshape(geo.co, cg, GROUP, *k.shape[2:]).transpose(0, 1, 3, 4, 5, 6, 2)
    return np.ascontiguousarray(k.reshape(geo.co, -1))


def _unordered(ordered: np.ndarray, geo: ConvGeometry) -> np.ndarray:
    """Inverse of _ordered: [Co, Ci, KH, KW]."""
    cg = -(-geo.ci // GROUP)
    k = ordered.reshape(geo.co, cg, geo.sh, geo.sw, geo.khq, geo.kwq, GROUP).transpose(0, 1, 6, 2, 3, 4, 5)
    return geo.unphase_kernel(k.reshape(geo.co, cg * GROUP, geo.sh, geo.sw, geo.khq, geo.kwq)[:, : geo.ci])


def pack(layer, geo: ConvGeometry, operand: str, planes: tuple = bit_dot.PLANES) -> bit_dot.BitWords:
    """The words over the grouped taps (_ordered); `planes` bit_dot's (BINARY_PLANES: bwn_conv2d)."""
    return bit_dot.pack(_ordered(layer.codes, geo), operand, planes)


def compute(x, w: bit_dot.BitWords, consts, site: Site, rule: str = ternary_dense_packed.RULE):
    """TE definition. x: [N, Ci, H, W] 8-bit codes; w: the words over the grouped taps (_ordered);
    `rule` the schedule rule of the epilogue (the primitive's)."""
    from tvm import te, tirx

    geo = site.geo
    per, g = geo.ho * geo.wo, geo.grouped(GROUP)
    xf = grouped_layout.te_layout(x, geo, site.zp, GROUP, w.operand)  # [N, flat, 4] in the operand type

    def quad(buf, row, qs):  # window row's codes for word q = (channel group, phase tap)
        n, p = row // per, row % per
        at = g.base(p // geo.wo, p % geo.wo) + g.tap_offset(*qs)
        return tirx.BufferLoad(buf, [n, at, tirx.Ramp(0, 1, GROUP)])

    sums = bit_dot.te_sums(xf, w, site.isa, geo.n * per, quad, (g.ci, g.sh, g.sw, g.khq, g.kwq))
    y = ternary_dense_packed.te_epilogue(sums, consts, site.epi, geo.co, rule)
    return te.compute(geo.out_shape(), lambda n, c, oy, ox: y[n * per + oy * geo.wo + ox, c], name="crop")


def reference(qx: np.ndarray, w: bit_dot.BitWords, site: Site) -> np.ndarray:
    """numpy: the windows, the same shifted codes and sums, the same integer epilogue."""
    geo = site.geo
    rows = np_windows(qx, geo, site.zp).reshape(geo.n * geo.ho * geo.wo, -1)
    codes = _unordered(bit_dot.unpack(w, geo.co, int(w.words.shape[1]) * GROUP), geo).reshape(geo.co, -1)
    planes = bit_dot.BINARY_PLANES if w.binary else bit_dot.PLANES
    sums = bit_dot.np_sums(rows, str(qx.dtype), bit_dot.pack(codes, w.operand, planes), geo.co)
    y = ternary_dense_packed.np_epilogue(site.epi, sums)
    return y.reshape(geo.n, geo.ho, geo.wo, geo.co).transpose(0, 3, 1, 2)
