"""Binary-weight conv2d (BinaryConnect, BWN) on few output positions: weights {-a_c, +a_c},
stored 1 bit a weight, each position's window a row of bit_dot's product (packed_windows, one
plane: the expanded word of 16 channels x 4 taps serves every position of a register tile).

    acc[n, c, p] = sum over the window of x' * s     (s = +-1)      y = requantize(a_c * acc)

Where it runs: convs of at most MAX_POSITIONS output positions an image (the late layers of a
CNN, where the weights outnumber the positions: SVHN ConvNet's conv7 reads 1.6 MB of int8
weights for one position). Elsewhere the int8 form's register tiles of 16 positions re-use each
weight byte many times and need no expansion.
"""
from __future__ import annotations

from ..formats import Format
from . import bit_dot, bwn_weights, conv_layout, packed_windows
from .int8_weights import epilogue
from .record import Primitive, Site, rule_of

STEM = "bwn_conv2d"
RULE = rule_of(STEM)  # scheduled as the packed dense layer (schedules/table.py)
MAX_POSITIONS = 64


def covers(geo: conv_layout.ConvGeometry) -> bool:
    """Few positions, and a kernel whose every tap is the layer's: a stride that does not divide
    the kernel pads it with zero taps (conv_layout.phase_kernel), which one plane cannot hold (a
    clear bit is +1, and such a tap reads a real input code)."""
    whole = geo.khq * geo.sh == geo.kh and geo.kwq * geo.sw == geo.kw
    return whole and packed_windows.covers(geo, MAX_POSITIONS)


def geometry(layer, in_shape):
    """conv_layout's geometry, for a conv of few output positions (else a clear error)."""
    return conv_layout.geometry_where(layer, in_shape, covers, "bits",
                                      f"of at most {MAX_POSITIONS} output positions whose strides divide its kernel")


def pack(layer, geo, operand: str = "uint8"):
    bwn_weights.check(layer)
    return packed_windows.pack(layer, geo, operand, bit_dot.BINARY_PLANES)


def compute(x, w, consts, site: Site):
    """TE definition. x: [N, Ci, H, W] 8-bit codes; w: the words over the grouped taps."""
    return packed_windows.compute(x, w, consts, site, RULE)


PRIMITIVE = Primitive("conv2d", Format.BITS, STEM, "int8", geometry, pack, compute, packed_windows.reference, epilogue)
