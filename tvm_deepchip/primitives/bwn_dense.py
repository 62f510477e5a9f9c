"""Binary-weight dense (BinaryConnect, BWN): weights {-a_c, +a_c}, stored 1 bit a weight.

    acc[n, c] = sum_k x'[n, k] * s[c, k]        (s = +-1: a set bit -1, a clear one +1)
    y[n, c]   = requantize(a_c * acc)           (the int8 layer's epilogue: codes +-1, scale a_c)

bit_dot's kernel with one plane: each word of 16 channels x 4 inputs expanded in registers to
+-1 bytes (on AVX-512: kmovq, then one vpblendmb of -1s and +1s) and multiplied by the int8 dot-product
instruction, 64 products an instruction. The int8 form (int8_dense) reads a byte a weight and no
expansion; this form reads an eighth of that, which pays where the weights, not the products,
bound the layer (few rows: batch 1).
"""
from __future__ import annotations

from ..formats import Format
from . import bwn_weights, dense_layout, ternary_dense_packed
from .int8_weights import epilogue
from .record import Primitive, Site, rule_of

STEM = "bwn_dense"
RULE = rule_of(STEM)  # scheduled as the packed dense layer (schedules/table.py)


def pack(layer, shape=None, operand: str = "uint8"):
    return bwn_weights.pack_rows(layer, layer.codes, operand)


def compute(x, w, consts, site: Site):
    """TE definition. x: [N, K] 8-bit codes; w: the words (bit_dot, one plane)."""
    return ternary_dense_packed.compute(x, w, consts, site, RULE)


PRIMITIVE = Primitive("dense", Format.BITS, STEM, "int8", dense_layout.geometry, pack, compute,
                      ternary_dense_packed.reference, epilogue)
