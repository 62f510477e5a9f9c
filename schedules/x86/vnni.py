"""AVX512-VNNI `vpdpbusd` (u8 x s8 -> i32, 16 lanes of 4 products) as tensor intrinsics:
- NAME: 16 output positions (int8_conv2d): 64 consecutive input bytes (16 positions x 4 channels of
  the grouped flat layout) against one weight quadruple broadcast to all lanes;
- CHANNELS_NAME: 16 output channels (int8_dense): one input quadruple broadcast against 64
  consecutive weight bytes (16 channels x 4).
(TVM's own `dot_16x4_vnni` has the channels shape, but its pre-LLVM-20 operand types do not build
with the LLVM TVM 0.27 bundles.) LLVM 20 changed the operands from <16 x i32> to <64 x i8>; the
call follows the LLVM in use. Registered at import: a tuning database whose traces tensorize with
them can only be read once they exist (schedules.load_all() imports this module before any
database is opened).
"""
from tvm.target import codegen

from ..dot_intrinsics import Shape, register

NAME = "deepchip_dot_16x4_positions_vnni"
CHANNELS_NAME = "deepchip_dot_16x4_channels_vnni"
_VECTORS = ("uint8x64", "int8x64") if codegen.llvm_version_major() >= 20 else ("int32x16", "int32x16")

register(NAME, Shape.POSITIONS, 16, "uint8", "llvm.x86.avx512.vpdpbusd.512", *_VECTORS)
register(CHANNELS_NAME, Shape.CHANNELS, 16, "uint8", "llvm.x86.avx512.vpdpbusd.512", *_VECTORS)
