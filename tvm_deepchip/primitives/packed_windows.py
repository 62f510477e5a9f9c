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

A 3x3 kernel with padding 1 over a 2x2 map reads padding at 20 of its 36 (position, tap) pairs.
Where the positions fit one register tile (bit_dot.Windows), those products are skipped: the taps
are unrolled, each word expanded once and multiplied with the positions that read it inside the
image, and what the skipped products add (the zero point's code times the padding taps' weights,
the same for every image) is a constant per position and channel (PaddedWords), added to the
sums. Measured on an AMD EPYC znver5 (AVX-512 VNNI, one layer alone, one thread): the digits
model's conv4/5/6 1.2 / 2.4 / 2.4 -> 0.8 / 1.5 / 1.5 us; the whole model, in one process in
turns, 11.4 -> 10.0 us (with bit_dot's two-core threshold counting the products computed).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from . import bit_dot, grouped_layout, ternary_dense_packed
from .bit_dot import GROUP
from .conv_layout import ConvGeometry, code_shift, np_windows
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


@dataclass(frozen=True, eq=False)
class PaddedWords(bit_dot.BitWords):
    """The words, and what the skipped products of taps reading padding add: [positions, planes,
    Cp] int32, each plane's sum of the zero point's code over the position's padding taps with
    that plane's sign (binary words: the signed sum)."""

    padded: object = None

    def nbytes(self) -> int:
        return super().nbytes() + int(self.padded.nbytes)


def _live(geo: ConvGeometry, p: int, tap: tuple) -> bool:
    """Whether position p's window reads tap (kyr, kxr, kyq, kxq) (the steps after the channel
    group) inside the image and the kernel (a phase tap past the kernel has zero weights)."""
    kyr, kxr, kyq, kxq = tap
    ky, kx = kyq * geo.sh + kyr, kxq * geo.sw + kxr
    y, x = p // geo.wo * geo.sh + ky - geo.pad[0], p % geo.wo * geo.sw + kx - geo.pad[1]
    return ky < geo.kh and kx < geo.kw and 0 <= y < geo.h and 0 <= x < geo.w


def _taps(geo: ConvGeometry) -> list:
    """Every (kyr, kxr, kyq, kxq): the loops of bit_dot's steps after the channel group."""
    return list(itertools.product(range(geo.sh), range(geo.sw), range(geo.khq), range(geo.kwq)))


def _skips(geo: ConvGeometry) -> bool:
    """Products are skipped where a window reads padding and the positions fit one register tile
    (a row's position is then static: bit_dot.Windows)."""
    per = geo.ho * geo.wo
    return per <= bit_dot.MAX_TILE_ROWS and not all(_live(geo, p, t) for t in _taps(geo) for p in range(per))


def pack(layer, geo: ConvGeometry, operand: str, planes: tuple = bit_dot.PLANES) -> bit_dot.BitWords:
    """The words over the grouped taps (_ordered); `planes` bit_dot's (BINARY_PLANES: bwn_conv2d);
    where products of padding taps are skipped, with what they add (PaddedWords)."""
    w = bit_dot.pack(_ordered(layer.codes, geo), operand, planes)
    if not _skips(geo):
        return w
    pad = int(layer.in_zero_point) + code_shift(layer.in_dtype, operand)  # the padding's code as the dot reads it
    k = geo.phase_kernel(layer.codes.astype(np.int64))  # Co, Ci, sh, sw, KHq, KWq
    cp = int(w.words.shape[0]) * bit_dot.CHANNELS
    padded = np.zeros((geo.ho * geo.wo, len(planes), cp), np.int32)
    for p in range(geo.ho * geo.wo):
        for tap in _taps(geo):
            if not _live(geo, p, tap):
                codes = k[:, :, tap[0], tap[1], tap[2], tap[3]]  # Co, Ci
                for i, sign in enumerate(planes):
                    per_channel = codes.sum(1) if planes == bit_dot.BINARY_PLANES else (codes == sign).sum(1)
                    padded[p, i, : geo.co] += (pad * per_channel).astype(np.int32)
    return PaddedWords(w.words, w.operand, padded)


def takes_pool(geo: ConvGeometry) -> bool:
    """Whether compute can read the input of a max pool before the conv (its grouped layout copy
    stages each row: grouped_layout)."""
    return grouped_layout.covers(geo, GROUP)


def compute(x, w: bit_dot.BitWords, consts, site: Site, rule: str = ternary_dense_packed.RULE, pool=None):
    """TE definition. x: [N, Ci, H, W] 8-bit codes; w: the words over the grouped taps (_ordered);
    `rule` the schedule rule of the epilogue (the primitive's). `pool` (int8_max_pool.Pool,
    where takes_pool): x is that max pool's input, the layout copy takes each window's max."""
    from tvm import te, tirx

    geo = site.geo
    per, g = geo.ho * geo.wo, geo.grouped(GROUP)
    xf = grouped_layout.te_layout(x, geo, site.zp, GROUP, w.operand, pool=pool)  # [N, flat, 4] in the operand type

    def quad(buf, row, qs):  # window row's codes for word q = (channel group, phase tap)
        n, p = row // per, row % per
        at = g.base(p // geo.wo, p % geo.wo) + g.tap_offset(*qs)
        return tirx.BufferLoad(buf, [n, at, tirx.Ramp(0, 1, GROUP)])

    windows = bit_dot.Windows(per, tuple(_taps(geo)), lambda p, tap: _live(geo, p, tap), w.padded) if isinstance(w, PaddedWords) else None
    sums = bit_dot.te_sums(xf, w, site.isa, geo.n * per, quad, (g.ci, g.sh, g.sw, g.khq, g.kwq), windows)
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
