"""ARM dotprod `sdot` (by element) as a tensor intrinsic over 4 output positions (s8 x s8 -> i32).

A is 16 consecutive input bytes (4 positions x 4 channels of the grouped flat layout), B one
weight quadruple broadcast to the four 32-bit lanes. Registered at import: a tuning record that
tensorizes with it names it.
"""
from ..dot_product import register_positions_intrinsic

NAME = "deepchip_sdot_4x4_positions"

register_positions_intrinsic(NAME, 4, "int8", "llvm.aarch64.neon.sdot.v4i32.v16i8", "int8x16", "int8x16")
