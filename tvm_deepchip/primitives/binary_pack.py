"""The data movement of binary activations: values binarized into bit-packed words, and max
pooling on bits. What feeds an XNOR layer its input where no XNOR layer wrote it as bits.

    pack:  bit c of position p = x[n, c, p] >= thr[c]     NCHW (or [N, K]) -> [N, H, W, Cw] (or [N, Kw])
    pool:  word = OR of the words in the window            max pooling of +-1 values, exactly

`x` is either the 8-bit codes an int8 layer wrote (the binarization Where(dequantize(q) >= tau)
is then an integer compare on the codes, `code_thresholds`) or a float tensor (compared as is).
The max of +-1 values is +1 where any is: a bitwise OR; ONNX pads a max pool with -inf, so taps
in the padding are skipped, never read as -1.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import binary_bits, roles
from .binary_bits import WORD_DTYPE, words
from .record import rule_of


def code_thresholds(scale: float, zero_point: int, dtype: str, tau: np.ndarray) -> np.ndarray:
    """int32 thr[c]: the smallest code q with float32(q - zp) * float32(scale) >= tau[c] (the
    float32 arithmetic of onnxruntime's DequantizeLinear then GreaterOrEqual), past the largest
    code where none is."""
    info = np.iinfo(dtype)
    codes = np.arange(info.min, info.max + 1)
    values = (codes - zero_point).astype(np.float32) * np.float32(scale)
    passes = values[None, :] >= np.asarray(tau, np.float32).reshape(-1, 1)  # monotone in q (scale > 0)
    first = np.where(passes.any(1), passes.argmax(1), len(codes))
    return (info.min + first).astype(np.int32)


PACK_RULE = rule_of("binary_pack")  # its words block is tagged like a primitive's epilogue: schedules/xnor.py


def te_pack(x, thr):
    """x [N, C, H, W] or [N, K]; thr [C] -> packed words (TE). x is compared in thr's type (codes
    widened to int32: a threshold past the largest code is 256 for uint8)."""
    attrs = roles.epilogue_attrs(PACK_RULE)
    read = _in_thr_type(x, thr)
    if len(x.shape) == 2:
        n, k = (int(s) for s in x.shape)
        return binary_bits.te_pack((n, words(k)), lambda i, c: read(i, c) >= thr[c], k, roles.EPILOGUE_NAME, attrs)
    return _pack_planes(x, thr, read, attrs)


def word_reader(x, thr):
    """(n, y, x, v) -> word v of the packed bits at (y, x) of NCHW x's channels: the pack's bits
    as one expression (TE), for a kernel that packs its input as it copies it
    (xnor_conv2d.compute_binarized). 8-bit codes against integer thresholds are compared in
    int16 (every threshold of 8-bit codes lies in -128..256: code_thresholds), which vectorizes
    twice as wide as int32."""
    from tvm import tirx

    c = int(x.shape[1])
    narrow = str(x.dtype) in ("uint8", "int8") and str(thr.dtype) == "int32"
    read = _in_thr_type(x, thr)
    one, zero = tirx.const(1, WORD_DTYPE), tirx.const(0, WORD_DTYPE)

    def on(n, ch, y, xx):
        if narrow:
            return x[n, ch, y, xx].astype("int16") >= thr[ch].astype("int16")
        return read(n, ch, y, xx) >= thr[ch]

    def word(n, y, xx, v):
        bits = []
        for j in range(min(binary_bits.WORD, c)):
            if c <= binary_bits.WORD:  # one word: channel j
                bits.append(tirx.Select(on(n, j, y, xx), one << j, zero))
            elif c % binary_bits.WORD == 0:  # whole words: channel v * 32 + j
                bits.append(tirx.Select(on(n, v * binary_bits.WORD + j, y, xx), one << j, zero))
            else:  # channel v * 32 + j, where the last word has it
                bits.append(tirx.Select(_channel_passes(lambda ch: on(n, ch, y, xx), c, v, j), one << j, zero))
        return binary_bits.or_tree(bits)

    return word


def _pack_planes(x, thr, read, attrs):
    """NCHW: the words of each channel group as planes [N, Cw, H, W], a sum over the group's 32
    channels of (compare << j) that runs along contiguous positions (vectorized by the schedule;
    channels are H*W apart in x), then copied into [N, H, W, Cw]."""
    from tvm import te, tirx

    n, c, h, w = (int(s) for s in x.shape)
    j = te.reduce_axis((0, min(binary_bits.WORD, c)), name="j")  # (fewer than 32 channels: one short word)

    def plane(i, v, y, z):
        on = _channel_passes(lambda ch: read(i, ch, y, z) >= thr[ch], c, v, j)
        bit = tirx.shift_left(tirx.const(1, WORD_DTYPE), j.astype(WORD_DTYPE))
        return te.sum(tirx.if_then_else(on, bit, tirx.const(0, WORD_DTYPE)), axis=j)  # disjoint bits: sum = OR

    planes = te.compute((n, words(c), h, w), plane, name="planes", attrs=roles.attrs(roles.BIT_VALUES))
    return te.compute((n, h, w, words(c)), lambda i, y, z, v: planes[i, v, y, z], name=roles.EPILOGUE_NAME, attrs=attrs)


def _in_thr_type(x, thr):
    """read(*i): x's value at index i in thr's type (8-bit codes widened to int32: a threshold
    past the largest code is 256 for uint8)."""
    def read(*i):
        v = x[i]
        return v if str(x.dtype) == str(thr.dtype) else v.astype(thr.dtype)

    return read


def _channel_passes(passes, c: int, v, j):
    """Whether channel v * 32 + j of the c channels passes (`passes(ch)`, a boolean expression of
    the channel index): false past the last channel, whose index the read is clamped to."""
    from tvm import tirx

    ch = v * binary_bits.WORD + j
    return tirx.all(ch < c, passes(tirx.min(ch, c - 1)))


def np_pack(x: np.ndarray, thr: np.ndarray) -> np.ndarray:
    on = x >= thr.reshape(binary_bits.channel_shape(x.ndim))
    return binary_bits.np_pack(np.moveaxis(on, 1, -1))


@dataclass(frozen=True)
class Pool:
    """A max pool's window (NCHW, dilation 1, floor mode): size, strides, padding (top, left, bottom, right)."""

    size: tuple
    strides: tuple
    padding: tuple

    def out_hw(self, h: int, w: int) -> tuple:
        t, l, b, r = self.padding
        return ((h + t + b - self.size[0]) // self.strides[0] + 1, (w + l + r - self.size[1]) // self.strides[1] + 1)


def te_pool(bits, pool: Pool, name: str = "bit_maxpool"):
    """bits [N, H, W, Cw] -> the OR over each window's taps inside the image (TE)."""
    from functools import reduce

    from tvm import te, tirx

    n, h, w, cw = (int(s) for s in bits.shape)
    ho, wo = pool.out_hw(h, w)
    top, left = pool.padding[:2]

    def word(i, oy, ox, c):
        terms = []
        for ky in range(pool.size[0]):
            for kx in range(pool.size[1]):
                y, x = oy * pool.strides[0] + ky - top, ox * pool.strides[1] + kx - left
                v = bits[i, tirx.max(tirx.min(y, h - 1), 0), tirx.max(tirx.min(x, w - 1), 0), c]
                inside = tirx.all(y >= 0, y < h, x >= 0, x < w)
                terms.append(v if not any(pool.padding) else tirx.if_then_else(inside, v, tirx.const(0, WORD_DTYPE)))
        return reduce(tirx.bitwise_or, terms)

    return te.compute((n, ho, wo, cw), word, name=name)


def np_pool(bits: np.ndarray, pool: Pool) -> np.ndarray:
    n, h, w, cw = bits.shape
    ho, wo = pool.out_hw(h, w)
    top, left = pool.padding[:2]
    out = np.zeros((n, ho, wo, cw), bits.dtype)
    for ky in range(pool.size[0]):
        for kx in range(pool.size[1]):
            ys = np.arange(ho) * pool.strides[0] + ky - top
            xs = np.arange(wo) * pool.strides[1] + kx - left
            ok_y, ok_x = (ys >= 0) & (ys < h), (xs >= 0) & (xs < w)
            tap = bits[:, np.clip(ys, 0, h - 1)][:, :, np.clip(xs, 0, w - 1)]
            out |= np.where((ok_y[:, None] & ok_x[None, :])[None, :, :, None], tap, 0).astype(bits.dtype)
    return out
