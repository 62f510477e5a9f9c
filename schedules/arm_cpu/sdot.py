"""ARM dotprod `sdot` as a tensor intrinsic over 4 output positions:

    C[i] += sum_k A[i, k] * B[k]        i < 4 positions, k < 4 input channels, s8 x s8 -> i32

A is 16 consecutive input bytes (4 positions x 4 channels of the grouped flat layout), B one
weight quadruple broadcast to the four 32-bit lanes (the by-element form of the instruction).
Registered at import: a tuning record that tensorizes with it names it.
"""
from tvm.s_tir import TensorIntrin
from tvm.script import tirx as T

from ..dot_product import positions_desc

NAME = "deepchip_sdot_4x4_positions"


@T.prim_func(s_tir=True)
def _impl(
    A: T.Buffer((4, 4), "int8", offset_factor=1),
    B: T.Buffer((4,), "int8", offset_factor=1),
    C: T.Buffer((4,), "int32", offset_factor=1),
) -> None:
    with T.sblock("root"):
        T.reads(C[0:4], A[0:4, 0:4], B[0:4])
        T.writes(C[0:4])
        b = T.reinterpret(B.vload([0], "int8x4"), dtype="int32")  # the 4 weights, broadcast
        C[T.ramp(T.int32(0), 1, 4)] = T.call_llvm_pure_intrin(
            T.llvm_lookup_intrinsic_id("llvm.aarch64.neon.sdot.v4i32.v16i8"),
            C.vload([0], dtype="int32x4"),
            A.vload([0, 0], dtype="int8x16"),
            T.reinterpret(T.broadcast(b, 4), dtype="int8x16"),
            dtype="int32x4",
        )


TensorIntrin.register(NAME, positions_desc(4, "int8"), _impl, override=True)
