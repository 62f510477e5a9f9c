"""What the binary-weight forms (Format.BITS: bwn_dense, bwn_conv2d) accept: a layer whose codes
are all -1 or +1 (BinaryConnect, BWN: weights {-a_c, +a_c}, read as an int8 layer with codes
+-1 and scale a_c, passes/layer_check), packed one bit a weight (bit_dot.BINARY_PLANES).
"""
from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..layer import QuantLayer
from . import bit_dot


def binary_valued(layer: QuantLayer) -> bool:
    """An int8 layer whose every code is -1 or +1."""
    return layer.weight_kind == "int8" and bool(np.all(np.abs(layer.codes.astype(np.int16)) == 1))


def check(layer: QuantLayer) -> None:
    if not binary_valued(layer):
        raise InputError(f"layer {layer.name!r}: format 'bits' needs binary weights (every weight -a or +a of its "
                         f"channel); the layer has {layer.weight_kind} weights with codes "
                         f"{sorted(set(np.unique(layer.codes).tolist()))[:5]}")


def pack_rows(layer: QuantLayer, codes2d: np.ndarray, operand: str) -> bit_dot.BitWords:
    """[Co, K] codes (in the kernel's tap order) -> one bit-plane."""
    check(layer)
    return bit_dot.pack(codes2d, operand, bit_dot.BINARY_PLANES)
