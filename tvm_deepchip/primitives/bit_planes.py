"""Ternary weights as two bit-planes, 2 bits per weight: what the packed conv2d and dense share.

planes[c, 0] holds one bit per tap for the +1 weights, planes[c, 1] for the -1 weights, 32 taps
per uint32 word, least significant bit first (binary_bits' packing).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .binary_bits import np_pack, np_unpack
from .record import Weights, scalar


def pack_bits(signs2d: np.ndarray) -> np.ndarray:
    """[Co, K] signs -> uint32 [Co, 2, ceil(K/32)] bit-planes (+1 plane, -1 plane), LSB first."""
    return np.stack([np_pack(signs2d > 0), np_pack(signs2d < 0)], axis=1)


def unpack_bits(planes: np.ndarray, k: int) -> np.ndarray:
    bits = np_unpack(planes, k).astype(np.int8)  # [Co, 2, k]
    return bits[:, 0] - bits[:, 1]


def te_bit(planes, c, plane, k):
    """The weight bit of tap k of channel c, decoded from its word (TE expression)."""
    from tvm import tirx

    word = planes[c, plane, k // 32]
    return (word >> (k % 32).astype("uint32")) & tirx.const(1, "uint32")


@dataclass(frozen=True, eq=False)
class BitPlanes(Weights):
    planes: object  # uint32 [Co, 2, words]
    taps: int = scalar(0)  # the largest +1 or -1 count of a channel: bounds the accumulators
    operand: str = scalar("uint8")  # the type the input codes are summed in (shifted into it)

    @classmethod
    def of(cls, signs2d: np.ndarray, operand: str = "uint8") -> "BitPlanes":
        """[Co, K] signs, K in the kernel's reduction order."""
        taps = max(int((signs2d == v).sum(1).max()) for v in (1, -1))
        return cls(pack_bits(signs2d), taps, operand)

    def nbytes(self) -> int:
        """What the packed kernels read at run time (weight_sizes: the one count of this form)."""
        from ..weight_sizes import WORD_BITS, bit_planes_bytes

        return bit_planes_bytes(self.planes.shape[0], self.planes.shape[2] * WORD_BITS)
