"""One dot-product step of the bit-plane kernel (bit_dot) per ISA class: `lanes` int32 channel
sums, each plus the 4 products of one broadcast group of input codes with that channel's 4
weights (-1/0 bytes expanded from the word).

    vnni      x86 AVX-512 VNNI: vpdpbusd (u8 x s8), 16 lanes
    pmaddwd   x86 without VNNI (AVX2: 8 lanes; AVX-512BW: 16): vpmaddubsw (u8 x s8 pairs into
              int16, never saturating here: |w| <= 1) then vpmaddwd against ones into int32
    sdot      aarch64 dotprod: sdot (s8 x s8), 4 lanes
    None      aarch64 without dotprod: the 4 products as int32 multiplies of the widened codes, added

The same instructions as the int8 kernels' tensor intrinsics (schedules/x86, schedules/arm_cpu),
called from the hand-built loop nest instead of matched by tensorize.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..errors import InputError

GROUP = 4


@dataclass(frozen=True)
class Step:
    lanes: int
    dot: Callable  # (acc int32 x lanes, quad: 4 input codes (vector), signs int8 x 4 lanes) -> acc


def _llvm(name: str, dtype: str, *args):
    from tvm import tirx

    return tirx.call_llvm_pure_intrin(dtype, name, *args)


def _broadcast_quad(quad, lanes: int, dtype: str):
    """The 4 input codes in every 32-bit lane, as `dtype`."""
    from tvm import tirx

    return tirx.reinterpret(dtype, tirx.Broadcast(tirx.reinterpret("int32", quad), lanes))


def _vnni():
    from tvm.target import codegen

    a, b = ("uint8x64", "int8x64") if codegen.llvm_version_major() >= 20 else ("int32x16", "int32x16")

    def dot(acc, quad, signs):
        from tvm import tirx

        return _llvm("llvm.x86.avx512.vpdpbusd.512", "int32x16", acc, _broadcast_quad(quad, 16, a), tirx.reinterpret(b, signs))

    return Step(16, dot)


def _pmaddubsw(vector_bytes: int):
    madd, widen = {32: ("llvm.x86.avx2.pmadd.ub.sw", "llvm.x86.avx2.pmadd.wd"),
                   64: ("llvm.x86.avx512.pmaddubs.w.512", "llvm.x86.avx512.pmaddw.d.512")}[vector_bytes]
    lanes = vector_bytes // 4

    def dot(acc, quad, signs):
        from tvm import tirx

        pairs = _llvm(madd, f"int16x{lanes * 2}", _broadcast_quad(quad, lanes, f"int8x{vector_bytes}"), signs)
        return acc + _llvm(widen, f"int32x{lanes}", pairs, tirx.Broadcast(tirx.const(1, "int16"), lanes * 2))

    return Step(lanes, dot)


def _sdot():
    def dot(acc, quad, signs):
        return _llvm("llvm.aarch64.neon.sdot.v4i32.v16i8", "int32x4", acc, _broadcast_quad(quad, 4, "int8x16"), signs)

    return Step(4, dot)


def _neon():
    def dot(acc, quad, signs):
        from tvm import tirx

        for j in range(GROUP):  # weight j of each of the 4 channels, times input code j
            w = tirx.Cast("int32x4", tirx.Shuffle([signs], [j + GROUP * lane for lane in range(4)]))
            x = tirx.Broadcast(tirx.Cast("int32", tirx.Shuffle([quad], [j])), 4)
            acc = acc + w * x
        return acc

    return Step(4, dot)


def step_for(cls, operand: str) -> Step:
    """The step of ISA class `cls` for input codes of type `operand` (int8_weights.dot_operand)."""
    if cls.dot == "vnni" and operand == "uint8":
        return _vnni()
    if cls.dot == "pmaddwd" and operand == "uint8":
        return _pmaddubsw(cls.vector_bytes)
    if cls.dot == "sdot" and operand == "int8":
        return _sdot()
    if cls.dot is None and not cls.is_x86 and operand == "int8":
        return _neon()
    raise InputError(f"the packed dot form has no step for ISA class {cls.name} on {operand} codes")
