"""What the int8 primitives (conv2d and dense) share: their weights, the exactness bound, the
operand their dot products read input codes in, and the epilogue of codes shifted into it."""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..errors import InputError
from . import requantize
from .conv_layout import code_shift
from .record import Weights, scalar

GROUP = 4  # input channels per dot-product step (vpdpbusd, sdot: 4 bytes to a 32-bit lane)


def check_bound(in_dtype: str, w: np.ndarray, name: str) -> None:
    """int32 accumulation is exact while sum |x|*|w| < 2^31 for every channel."""
    xmax = 255 if in_dtype == "uint8" else 128
    worst = xmax * np.abs(w.reshape(w.shape[0], -1).astype(np.int64)).sum(1).max()
    if worst >= 2**31:
        raise InputError(f"{name}: int8 layer with K={w[0].size} can overflow an int32 accumulator")


@dataclass(frozen=True, eq=False)
class Int8Weights(Weights):
    w: object  # int8 (int16 for int16 operands) in the primitive's layout
    operand: str = scalar("uint8")  # the type the dot products read the input codes in
    max_weight: int = scalar(127)  # the largest weight magnitude (1: binary or ternary codes, pair_sums)


# int16 codes are multiplied in channel pairs (x86's vpmaddwd: two int16 products summed into
# each int32 lane; exact, where the u8 x s8 vpmaddubsw would saturate in int16 for weights over
# NARROW_WEIGHT_MAX)
WIDE_OPERAND, WIDE_GROUP = "int16", 2


# The largest weight magnitude x86's vpmaddubsw multiplies exactly: it sums two u8 x s8 products
# into an int16 lane, saturating, and 2 * 255 * 64 = 32640 fits (schedules/x86/pmaddubsw.py).
NARROW_WEIGHT_MAX = 64


def max_weight(codes: np.ndarray) -> int:
    """The largest weight magnitude of `codes` (0 for none)."""
    return int(np.abs(codes.astype(np.int16)).max(initial=0))


def dot_operand(cls, codes: np.ndarray) -> str:
    """The type a layer's dot products read input codes in on ISA class `cls`: the class's own,
    except on x86 without VNNI, where weights of at most 7 bits (binary and ternary codes among
    them) take uint8 codes through vpmaddubsw + vpmaddwd instead of int16 pairs through vpmaddwd."""
    if cls.dot == "pmaddwd" and codes.size and max_weight(codes) <= NARROW_WEIGHT_MAX:
        return "uint8"
    return cls.int8_operand


def group_of(operand: str) -> int:
    """Input channels per dot-product step for codes of type `operand`."""
    return WIDE_GROUP if operand == WIDE_OPERAND else GROUP


def shifted_epilogue(layer, operand: str) -> requantize.Epilogue:
    """The epilogue of a layer whose input codes arrive shifted into `operand` (q + 128 as
    uint8 for x86 VNNI, q - 128 as int8 for ARM sdot): each accumulator gains shift * its sum of
    weights (int8: sum(w); ternary dot form: the +1 and the -1 tap counts).

    Fitted for codes of the operand type (the exactness bound then covers the shifted
    accumulators), then the bias loses M * shift * sum(w): integer arithmetic, exact; the bound
    grows by at most that much, still below 2^53 (requantize.EXACT_BITS keeps a bit to spare).
    A float-output epilogue takes shift * sum(w) off the accumulators instead, so that x86 and ARM,
    which shift differently, compute the same float."""
    epi = requantize.fit(replace(layer, in_dtype=operand))
    s = code_shift(layer.in_dtype, operand)
    n_p, n_n = requantize.tap_counts(layer)  # int8: (sum of weights, 0)
    if not epi.integer:  # float output: the shift comes off the accumulators, in the integers (exact:
        return replace(epi, acc_offset=s * n_p,  # a float32 bias correction would round per ISA)
                       acc_offset_n=None if epi.mult_n is None else s * n_n)
    correction = epi.mult_p * s * n_p - (epi.mult_n * s * n_n if epi.mult_n is not None else 0)
    return replace(epi, bias=epi.bias - correction)  # (its int32 or float64 form follows)


def epilogue(layer, operand: str) -> requantize.Epilogue:
    """The layer's epilogue for input codes arriving as `operand` (shifted by 128 if not its own)."""
    return shifted_epilogue(layer, operand) if code_shift(layer.in_dtype, operand) else requantize.fit(layer)
