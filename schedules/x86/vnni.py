"""AVX512-VNNI `vpdpbusd` as a tensor intrinsic over 16 output positions (u8 x s8 -> i32).

A is 64 consecutive input bytes (16 positions x 4 channels of the grouped flat layout), B one
weight quadruple broadcast to all lanes. (TVM's own `dot_16x4_vnni` has the transposed shape:
16 channels of one position, which leaves the epilogue a 16x16 transpose per tile, and its
pre-LLVM-20 operand types do not build with the LLVM TVM 0.27 bundles.) LLVM 20 changed the
operands from <16 x i32> to <64 x i8>; the call follows the LLVM in use.
Registered at import: a tuning database whose traces tensorize with it can only be read once it
exists (schedules.load_all() imports this module before any database is opened).
"""
from tvm.target import codegen

from ..dot_product import register_positions_intrinsic

NAME = "deepchip_dot_16x4_positions_vnni"

register_positions_intrinsic(NAME, 16, "uint8", "llvm.x86.avx512.vpdpbusd.512",
                             *(("uint8x64", "int8x64") if codegen.llvm_version_major() >= 20 else ("int32x16", "int32x16")))
