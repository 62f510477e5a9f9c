"""Binary activations and weights as bits: what the XNOR primitives share.

A value in {-1, +1} is one bit (1 for +1), 32 to a uint32 word along the channel axis, least
significant bit first; the bits past the last channel are 0 in activations and weights alike, so
they never differ. For C channels in W = ceil(C / 32) words, a dot product of +-1 values is

    sum_k x_k * w_k = C - 2 * sum_words popcount(x_word XOR w_word)

(a pair that agrees adds 1, one that differs -1; the padding bits agree and the C counts only the
real ones). An XNOR layer's output for the next XNOR layer is bits too: the next binarization
Where(clip(y) >= tau, 1, -1) of the float output y = a[c] * acc + b[c] is, in the integers,
acc >= T[c] with T fitted once here (`thresholds`), so no float is ever computed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

WORD = 32  # bits per packed word (uint32: the widest lane every ISA's vector popcount has)
WORD_DTYPE = "uint32"
PAIR_DTYPE = "uint64"  # two words read as one by a kernel (np_pairs, te_word)


def words(c: int) -> int:
    return -(-int(c) // WORD)


def channel_shape(ndim: int) -> tuple:
    """Broadcast shape of a per-channel constant over an [N, C, ...] array of `ndim` axes."""
    return (1, -1) + (1,) * (ndim - 2)


def np_pack(bits: np.ndarray) -> np.ndarray:
    """bool/0-1 [..., C] -> uint32 [..., ceil(C/32)], LSB first, the tail bits 0."""
    c = bits.shape[-1]
    padded = np.zeros(bits.shape[:-1] + (words(c) * WORD,), np.uint64)
    padded[..., :c] = bits != 0
    weights = np.uint64(1) << np.arange(WORD, dtype=np.uint64)
    return (padded.reshape(bits.shape[:-1] + (words(c), WORD)) * weights).sum(-1).astype(np.uint32)


def np_unpack(packed: np.ndarray, c: int) -> np.ndarray:
    """Inverse of np_pack (or of np_pairs over the last axis): uint8 0/1 [..., c]."""
    width = packed.dtype.itemsize * 8
    bits = (packed[..., None] >> np.arange(width, dtype=packed.dtype)) & 1
    return bits.reshape(packed.shape[:-1] + (-1,))[..., :c].astype(np.uint8)


def pairs_words(cls, n_words: int) -> bool:
    """Whether a kernel for ISA class `cls` reads `n_words` words two at a time, as uint64: where the
    class counts 64-bit lanes best (IsaClass.popcount_bits) and the words pair up."""
    return cls is not None and cls.popcount_bits == 2 * WORD and n_words % 2 == 0


def np_pairs(packed: np.ndarray, axis: int) -> np.ndarray:
    """uint32 words -> uint64 [.., n / 2 along `axis`, ..]: word 2v in the low half, 2v + 1 in the
    high (the bits in channel order still, as te_word reads an activation's words)."""
    lo = np.take(packed, np.arange(0, packed.shape[axis], 2), axis=axis).astype(np.uint64)
    hi = np.take(packed, np.arange(1, packed.shape[axis], 2), axis=axis).astype(np.uint64)
    return lo | (hi << np.uint64(WORD))


def te_word(x, pixel: tuple, v, weights):
    """Word v of x[*pixel] in the width of the packed `weights`: x[*pixel, v], or for paired
    weights x[*pixel, 2v] | x[*pixel, 2v + 1] << 32 as one uint64 (TE; LLVM loads it as one)."""
    from tvm import tirx

    if str(weights.dtype) != PAIR_DTYPE:
        return x[(*pixel, v)]
    lo = x[(*pixel, 2 * v)].astype(PAIR_DTYPE)
    hi = x[(*pixel, 2 * v + 1)].astype(PAIR_DTYPE)
    return tirx.bitwise_or(lo, tirx.shift_left(hi, tirx.const(WORD, PAIR_DTYPE)))


def acc_dtype(weights) -> str:
    """The popcount accumulators' type for packed weights (TE tensors or numpy): int32 for uint32
    words, int64 for paired ones (summed as such: no narrowing per step)."""
    return "int64" if str(weights.dtype) == PAIR_DTYPE else "int32"


def te_popcount(word, weight, dtype: str):
    """popcount(word XOR weight) as `dtype` (acc_dtype) (TE)."""
    from tvm import tirx

    return tirx.popcount(tirx.bitwise_xor(word, weight)).astype(dtype)


def or_tree(bits: list):
    """The OR of TIR expressions as a balanced tree (independent ORs, a short dependency chain)."""
    from functools import reduce

    from tvm import tirx

    while len(bits) > 1:
        bits = [reduce(tirx.bitwise_or, bits[i:i + 2]) for i in range(0, len(bits), 2)]
    return bits[0]


def te_pack(shape, bit, c: int, name: str, attrs=None):
    """uint32 words [*shape[:-1], words(c)] whose bit j of word v is bit(*idx, 32 v + j) (a boolean
    expression of the channel index) for channels below c, else 0 (TE). Blocks of role BIT_VALUES
    (each vectorized by the schedules): every channel's bit in its place in its word, then the 32
    of a word folded by ORs of halves (16, 8, 4, 2 lanes), so no step is a scalar loop over bits
    (a 32-term OR expression compiled to scalar loads and stack spills: 2x slower conv layers).
    A bit's value is a Select, not an if_then_else: TVM's vectorizer scalarizes an if_then_else
    whose condition is a vector (it is lazy), and LLVM then re-vectorized the scalar loop across
    words with gathers and scatters: 84% of SVHN ConvNet BNN conv4's time (3.9 -> 1.4 us)."""
    from tvm import te, tirx

    from . import roles

    lead, n = tuple(shape[:-1]), words(c)

    def value(*idx):
        ch = idx[-2] * WORD + idx[-1]
        on = tirx.all(ch < c, bit(*idx[:-2], tirx.min(ch, c - 1)))
        return tirx.Select(on, tirx.shift_left(tirx.const(1, WORD_DTYPE), idx[-1].astype(WORD_DTYPE)),
                                 tirx.const(0, WORD_DTYPE))

    def fold(src, half):
        return lambda *i: src[i] | src[(*i[:-1], i[-1] + half)]

    cur = te.compute((*lead, n, WORD), value, name=f"{name}_bits", attrs=roles.attrs(roles.BIT_VALUES))
    width = WORD
    while width > 2:
        width //= 2
        cur = te.compute((*lead, n, width), fold(cur, width), name=f"{name}_or{width}", attrs=roles.attrs(roles.BIT_VALUES))
    return te.compute((*lead, n), lambda *i: cur[(*i, 0)] | cur[(*i, 1)], name=name, attrs=attrs or {})


@dataclass
class BitsEpilogue:
    """The epilogue of an XNOR layer whose output feeds another XNOR layer: bit c is acc >= T[c]
    (int32 [Cp], padded channels never set). Duck-typed like requantize.Epilogue for the registry."""

    thresholds: np.ndarray
    out_dtype: str = WORD_DTYPE
    integer: bool = True

    def consts(self) -> list[np.ndarray]:
        return [self.thresholds]


def thresholds(a, bias, tau, act_lo: float, act_hi: float, taps: int) -> np.ndarray:
    """int32 T[c] with  acc >= T[c]  <=>  clip(a[c] * acc + bias[c], act_lo, act_hi) >= tau[c]
    for every integer acc in [-taps, taps], in exact rational arithmetic on the float32 constants
    (onnxruntime evaluates the same comparison on a float32 sum, which rounds: only values within
    that rounding of tau can differ). a >= 0 (binary weights' scales)."""
    out = np.empty(len(a), np.int64)
    never, always = taps + 1, -taps
    for c, (ac, bc, tc) in enumerate(zip(np.asarray(a, np.float64), np.asarray(bias, np.float64), np.asarray(tau, np.float64))):
        if act_lo >= tc:  # clip(y) >= act_lo >= tau: every value passes
            out[c] = always
        elif act_hi < tc:  # clip(y) <= act_hi < tau: none does
            out[c] = never
        elif ac == 0:  # y = b whatever the input (lo < tau <= hi: clip(y) >= tau <=> y >= tau)
            out[c] = always if bc >= tc else never
        else:  # a * acc >= tau - b  <=>  acc >= (tau - b) / a  (a > 0)
            t = math.ceil((Fraction(tc) - Fraction(bc)) / Fraction(ac))
            out[c] = min(max(t, always), never)
    return out.astype(np.int32)
