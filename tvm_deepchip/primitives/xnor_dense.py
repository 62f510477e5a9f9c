"""XNOR dense: binary weights {-a[c], +a[c]} on binary inputs {-1, +1}, both bit-packed.

    acc[n, c] = K - 2 * sum_words popcount(x[n, v] XOR w[v, c])       (binary_bits)
    y = the epilogue of acc, as xnor_conv2d's: bits for the next XNOR layer or requantized codes

Input: uint32 [N, ceil(K/32)]. Weights: uint32 [Cp / B, ceil(K/32), B] (xnor_weights' channel
blocks: a block's words of one input word adjacent, the vector runs over output channels; at
batch 1 every weight is read once, in order), or their pairs as uint64 where the ISA class reads
words two at a time (binary_bits.pairs_words, as xnor_conv2d: AVX2 build, bits out, batch 1,
each layer alone, the two forms in turns: K x Co 1024 x 512 0.70x the time, 512 x 512 0.76x,
4096 x 1024 0.88x). Output: bits [N, ceil(Co/32)] or codes [N, Co].
"""
from __future__ import annotations

import numpy as np

from ..formats import Format
from . import binary_bits, dense_layout, roles
from .binary_bits import BitsEpilogue, words
from .record import Primitive, Site, rule_of
from .xnor_conv2d import epilogue, np_output, np_signs, output
from .xnor_weights import XnorWeights, np_blocked, np_unblocked, padded, padded_channels, te_weight

STEM = "xnor_dense"
RULE = rule_of(STEM)


def pack(layer, geo=None, operand: str = "uint8", cls=None) -> XnorWeights:
    """[Co, K] codes +-1 -> XnorWeights (bit 1 for +1), words paired for ISA class `cls` where it
    reads them so."""
    co, k = layer.codes.shape
    bits = binary_bits.np_pack(layer.codes > 0)  # [Co, Kw]
    w = np.zeros((bits.shape[1], padded(co)), np.uint32)
    w[:, :co] = bits.T
    if binary_bits.pairs_words(cls, w.shape[0]):
        w = binary_bits.np_pairs(w, axis=0)
    return XnorWeights(np_blocked(w), k)


def compute(x, weights: XnorWeights, consts, site: Site):
    """TE definition. x: uint32 [N, Kw] bits; weights: from `pack`."""
    from tvm import te

    g = site.geo
    w = weights.w
    v = te.reduce_axis((0, int(w.shape[1])), name="v")  # the input's words, or their pairs (pack)
    cp = padded_channels(w)

    def popcounts(n, c):
        word = binary_bits.te_word(x, (n,), v, w)
        return te.sum(binary_bits.te_popcount(word, te_weight(w, (v,), c), binary_bits.acc_dtype(w)), axis=v)

    pcs = te.compute((g.n, cp), popcounts, name="popcounts", attrs=roles.attrs(roles.ACCUMULATOR))
    return output(lambda n, c: weights.taps - pcs[n, c].astype("int32") * 2, (g.n,), g.co, cp, consts, site.epi, RULE)


def reference(qx: np.ndarray, weights: XnorWeights, site: Site) -> np.ndarray:
    """numpy: +-1 inputs times +-1 weights (not popcounts), then the same epilogue."""
    g = site.geo
    acc = np_signs(qx, g.k) @ np_signs(np_unblocked(weights.w)[:, : g.co].T, g.k).T
    return np_output(acc, site.epi, g.co)


def packed_io(geo, epi) -> tuple:
    """(input shape, dtype, output shape) of the kernel: bits in; bits or codes out."""
    out = (geo.n, words(geo.co)) if isinstance(epi, BitsEpilogue) else geo.out_shape()
    return (geo.n, words(geo.k)), binary_bits.WORD_DTYPE, out


PRIMITIVE = Primitive("dense", Format.XNOR, STEM, "binary", dense_layout.geometry, pack, compute, reference, epilogue, packed_io,
                      pack_by_class=True)
