"""AVX512-VNNI `vpdpbusd` as a tensor intrinsic over 16 output positions:

    C[i] += sum_k A[i, k] * B[k]        i < 16 positions, k < 4 input channels, u8 x s8 -> i32

A is 64 consecutive input bytes (16 positions x 4 channels of the grouped flat layout), B one
weight quadruple broadcast to all lanes. (TVM's own `dot_16x4_vnni` has the transposed shape:
16 channels of one position, which leaves the epilogue a 16x16 transpose per tile.)
LLVM 20 changed the intrinsic's operands from <16 x i32> to <64 x i8>; both forms are built.
"""
from tvm.s_tir import TensorIntrin
from tvm.script import tirx as T

from ..dot_product import positions_desc

NAME = "deepchip_dot_16x4_positions_vnni"


def _impl(byte_operands: bool):
    a_t, b_t = ("uint8x64", "int8x64") if byte_operands else ("int32x16", "int32x16")

    @T.prim_func(s_tir=True)
    def impl(
        A: T.Buffer((16, 4), "uint8", offset_factor=1),
        B: T.Buffer((4,), "int8", offset_factor=1),
        C: T.Buffer((16,), "int32", offset_factor=1),
    ) -> None:
        with T.sblock("root"):
            T.reads(C[0:16], A[0:16, 0:4], B[0:4])
            T.writes(C[0:16])
            b = T.reinterpret(B.vload([0], "int8x4"), dtype="int32")  # the 4 weights, broadcast
            C[T.ramp(T.int32(0), 1, 16)] = T.call_llvm_pure_intrin(
                T.llvm_lookup_intrinsic_id("llvm.x86.avx512.vpdpbusd.512"),
                C.vload([0], dtype="int32x16"),
                T.reinterpret(A.vload([0, 0], dtype="uint8x64"), dtype=a_t),
                T.reinterpret(T.broadcast(b, 16), dtype=b_t),
                dtype="int32x16",
            )

    return impl


def _register() -> None:
    from tvm.target import codegen

    TensorIntrin.register(NAME, positions_desc(16, "uint8"), _impl(codegen.llvm_version_major() >= 20), override=True)


# At import: a tuning database whose traces tensorize with it can only be read once it exists
# (schedules.load_all() imports this module before any database is opened).
_register()


def intrinsic() -> str:
    return NAME
