"""Ternary dense in the dot-product form: the +1 taps and the -1 taps as two 0/1 weight planes,
multiplied with the target's int8 dot-product instruction (the int8 dense's kernel,
schedules/dense_dot: VNNI `vpdpbusd`, `vpmaddwd` pairs, ARM `sdot`).

    acc_p[n, c] = sum_k x[n, k] * [w[c, k] = +1]      acc_n[n, c] = sum_k x[n, k] * [w[c, k] = -1]
    y[n, c]     = requantize(Wp[c] * acc_p - Wn[c] * acc_n)

Every weight is visited, 16 to 64 per instruction, where the sparse form gathers only the
non-zero ones, one scalar load each (~0.3 ns a tap on one core; AVX-512 gathers are no faster
on znver5). It trades memory for speed: 2 bytes a weight (uint8 x 0/1 through vpmaddubsw on
AVX2, vpdpbusd on VNNI) against the sparse rows' ~2 bytes a non-zero weight, so it is the default
only where format_rule says (short lists; on AVX2, dense layers of up to 2^18 weights); format
choice (`deepchip tune`) measures it and keeps it where it is the faster. Measured, MLP 512x512 at
90% zeros: znver5, one core, 5.7 us against the sparse form's 7.6 (VNNI); znver4, AVX2 build, two
cores, 3.1 us against 8.7.

The planes are int8_dense weights of 2 x Cp channels, the two planes of each block of 16
channels adjacent (block 2b: the +1 plane of channels 16b..16b+15, block 2b + 1: their -1
plane), so one register tile holds both accumulators of its channels.
"""
from __future__ import annotations

import numpy as np

from ..formats import Format
from . import dense_layout, int8_dense, requantize, roles
from .conv_layout import _ceil, code_shift
from .int8_weights import Int8Weights, epilogue
from .record import Primitive, Site, rule_of

STEM = "ternary_dense_dot"
RULE = rule_of(STEM)
LANES = int8_dense.CHANNELS_PER_STEP
PLANES = (1, -1)  # the code each plane marks, in block order


def planes_of(codes: np.ndarray) -> np.ndarray:
    """[Co, K] codes in {-1, 0, 1} -> [2 Cp, K] 0/1 planes, interleaved by blocks of LANES."""
    co, k = codes.shape
    cp = _ceil(co, LANES) * LANES
    padded = np.zeros((cp, k), np.int8)
    padded[:co] = codes
    blocks = padded.reshape(cp // LANES, 1, LANES, k)
    return np.concatenate([(blocks == v) for v in PLANES], axis=1).astype(np.int8).reshape(2 * cp, k)


def pack(layer, shape=None, operand: str = "uint8") -> Int8Weights:
    """The two planes in the int8 dense layout (sums of at most K codes: exact in int32)."""
    return int8_dense.block_weights(planes_of(layer.codes), operand)


def _plane(acc, plane: int):
    """acc_p (plane 0) or acc_n (plane 1) of output channel c, read from the interleaved acc."""
    return lambda n, c: acc[n, (c // LANES) * 2 * LANES + plane * LANES + c % LANES]


def compute(x, weights: Int8Weights, consts, site: Site):
    """TE definition. x: [N, K] 8-bit codes; weights: from `pack`."""
    from tvm import te

    y = te_padded(x, weights, consts, site)
    return te.compute(site.geo.out_shape(), lambda n, c: y[n, c], name="crop")


def te_padded(x, weights: Int8Weights, consts, site: Site, read=None, rule: str = RULE):
    """The epilogue's output over the padded channels (TE; the block carrying schedule rule
    `rule`); `read(i, t)`: input code t of image i (int8_dense.te_accumulate's)."""
    from tvm import te, tirx

    geo = site.geo
    acc = int8_dense.te_accumulate(x, weights, geo.k, read, int8_dense.pair_chunk(site, weights))
    shape = (geo.n, int(acc.shape[1]) // 2)
    last = geo.co - 1  # padded channels read the last channel's constants; they are cropped
    f = requantize.te_apply(site.epi, _plane(acc, 0), _plane(acc, 1), consts,
                            index_channel=lambda idx: tirx.min(idx[1], last))
    return te.compute(shape, lambda *i: f(i), name=roles.EPILOGUE_NAME, attrs=roles.epilogue_attrs(rule))


def reference(qx: np.ndarray, weights: Int8Weights, site: Site) -> np.ndarray:
    """numpy: the same shifted codes times the same planes, the same integer epilogue."""
    geo = site.geo
    cp = _ceil(geo.co, LANES) * LANES
    xs = qx.astype(np.int64) + code_shift(str(qx.dtype), weights.operand)
    planes = int8_dense.unpack(weights.w, 2 * cp, geo.k).reshape(cp // LANES, 2, LANES, geo.k)

    def acc(plane):
        return xs @ planes[:, plane].reshape(cp, geo.k).astype(np.int64).T

    return requantize.np_apply(site.epi, acc(0)[:, : geo.co], acc(1)[:, : geo.co], channel_axis=1)


PRIMITIVE = Primitive("dense", Format.DOT, STEM, "ternary", dense_layout.geometry, pack, compute, reference, epilogue,
                      pair_sums=int8_dense.pair_sums_used)
