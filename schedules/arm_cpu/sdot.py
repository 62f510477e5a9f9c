"""ARM dotprod `sdot` (s8 x s8 -> i32, 4 lanes of 4 products) as tensor intrinsics:
- NAME: 4 output positions (int8_conv2d): 16 consecutive input bytes (4 positions x 4 channels of
  the grouped flat layout) against one weight quadruple broadcast to the four lanes (sdot by element);
- CHANNELS_NAME: 4 output channels (int8_dense): one input quadruple broadcast against 16
  consecutive weight bytes (4 channels x 4).
Registered at import: a tuning record that tensorizes with one names it.
"""
from ..dot_intrinsics import Shape, register

NAME = "deepchip_sdot_4x4_positions"
CHANNELS_NAME = "deepchip_sdot_4x4_channels"
_LLVM = "llvm.aarch64.neon.sdot.v4i32.v16i8"

register(NAME, Shape.POSITIONS, 4, "int8", _LLVM, "int8x16", "int8x16")
register(CHANNELS_NAME, Shape.CHANNELS, 4, "int8", _LLVM, "int8x16", "int8x16")
