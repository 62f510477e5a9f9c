"""The integer epilogue (requantize.py) of int16 accumulators on x86: pair multiply-adds and
saturating packs.

requantize's int32 form evaluates, for each piece i of the multipliers,

    Y_i = M_pi * acc_p - M_ni * acc_n + B_i  (+ Y_{i-1} >> L)

as two 32-bit multiplies per output, then clamps and narrows. x86 has no cheap 32-bit multiply
(an AMD EPYC znver1 issues a 256-bit vpmulld every 1.6 ns, vpmaddwd every 0.8, vpaddd every 0.28:
eight independent chains each, one core), and LLVM narrows int32 to 8 bits through min, max and
three shuffles. With a tenth of their weights non-zero, ResNet-44's 3x3 layers spent nearly as
long in that epilogue as in their tap adds (perf, AVX2 build on that core). Where the accumulators
are int16 and every multiplier piece fits int16 (Epilogue.pairs), a group of two vectors of
outputs (or one) takes:

- acc_p and acc_n interleaved within each 128-bit lane (vpunpcklwd / vpunpckhwd: lanes 0-3 and
  4-7 of each 128-bit block);
- per piece, one vpmaddwd against the broadcast pair (M_pi, -M_ni): both products and their
  difference in one instruction;
- where the one-piece sum fits int32 (it does on most layers), the pieces recombined as
  (T_1 << L) + T_0 (the exact M_p * acc_p - M_n * acc_n) and B added once; else the carry form;
- the shift, then vpackssdw (which undoes the in-lane interleave: outputs back in order),
  the clamp in int16 where the layer's range is narrower than its type, and vpackuswb / vpacksswb
  (saturating to the output type is the clamp to it) and one qword permute.
The integers are requantize's and the saturations are the clamp, so every output is the same
(the numpy reference is requantize's formula). Measured (AMD EPYC znver1, AVX2 builds of whole
models in one process, taking turns, 10 x 200 runs): ResNet-44 0.935x and 0.944x the time of the
generic epilogue (blocks 0.906-0.967, 0.937-0.953), SVHN ConvNet 0.944x; not measured on AVX-512.
ARM builds keep the generic form (NEON multiplies int16 by int16 into int32 in one instruction).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .requantize import Epilogue


@dataclass(frozen=True)
class PairMadd:
    """One x86 vector width's instructions (LLVM intrinsics)."""

    int16_lanes: int  # int16 accumulators a vector holds
    madd: str  # (int16 x n, int16 x n) -> int32 x n/2: adjacent products summed
    pack16: str  # (int32 x n/2, int32 x n/2) -> int16 x n, saturating, per 128-bit lane
    pack8: dict  # output dtype -> (int16 x n, int16 x n) -> 8-bit x 2n, saturating, per 128-bit lane


_X86 = {
    32: PairMadd(16, "llvm.x86.avx2.pmadd.wd", "llvm.x86.avx2.packssdw",
                 {"uint8": "llvm.x86.avx2.packuswb", "int8": "llvm.x86.avx2.packsswb"}),
    64: PairMadd(32, "llvm.x86.avx512.pmaddw.d.512", "llvm.x86.avx512.packssdw.512",
                 {"uint8": "llvm.x86.avx512.packuswb.512", "int8": "llvm.x86.avx512.packsswb.512"}),
}
BLOCK = 8  # int16 lanes of a 128-bit block: x86's unpacks and packs work within each


def narrower(pm: PairMadd) -> list[PairMadd]:
    """pm and the narrower x86 forms (every x86 class has AVX2's), widest first."""
    return [_X86[b] for b in sorted(_X86, reverse=True) if _X86[b].int16_lanes <= pm.int16_lanes]


def for_class(cls) -> PairMadd | None:
    """The pair epilogue's instructions for ISA class `cls` (every x86 class), None elsewhere."""
    return _X86.get(cls.vector_bytes) if cls.is_x86 else None


def usable(pm: PairMadd, epi: Epilogue) -> bool:
    """Whether `epi` runs in pairs: an integer epilogue of two accumulators to 8 bits whose int32
    form's pieces fit int16."""
    return (epi.integer and epi.pairs and epi.mult_n is not None and epi.out_dtype in pm.pack8
            and epi.split_form() is not None)


def in_lane_interleave(n: int, high: bool) -> list[int]:
    """Shuffle indices over [a (n lanes), b (n lanes)]: vpunpck{l,h}wd, per 128-bit block."""
    half = BLOCK // 2
    return [j * BLOCK + (half if high else 0) + i // 2 + (i % 2) * n for j in range(n // BLOCK) for i in range(BLOCK)]


def _requantized(pm: PairMadd, epi: Epilogue, form: tuple, one_sum: bool, consts, c, pair):
    """int32 x n/2: (M_p * acc_p - M_n * acc_n + B) >> shift of interleaved (acc_p, acc_n) pairs;
    form: epi's (pieces, bits); one_sum: whether its one-piece sum fits int32."""
    from tvm import tirx

    k, bits = form
    n = pm.int16_lanes // 2
    vec = lambda v: tirx.Broadcast(v, n)  # noqa: E731
    # int16 lane 2j: M_pi, lane 2j+1: -M_ni
    terms = [pair_madd(pm, pair, (consts[i][c] & 0xFFFF) | ((0 - consts[k + i][c]) << 16)) for i in range(k)]
    bias = [consts[2 * k + i][c] for i in range(k)]
    if one_sum:  # one int32 sum: the pieces recombined high to low (each partial
        # value is M_p * acc_p - M_n * acc_n of the top pieces, inside the sum's bounds), then B
        y, b = terms[-1], bias[-1]
        for term, piece in zip(terms[-2::-1], bias[-2::-1]):
            y = tirx.shift_left(y, vec(tirx.const(bits, "int32"))) + term
            b = (b << bits) + piece
        return tirx.shift_right(y + vec(b), vec(tirx.const(epi.shift, "int32")))
    y = None
    for term, b in zip(terms, bias):
        term = term + vec(b)
        y = term if y is None else term + tirx.shift_right(y, vec(tirx.const(bits, "int32")))
    return tirx.shift_right(y, vec(tirx.const(epi.shift - (k - 1) * bits, "int32")))


def pair_madd(pm: PairMadd, pair, word):
    """vpmaddwd of interleaved int16 pairs against one pair of coefficients broadcast: the int32
    `word` holds them as its halves (lane 2j its low half, lane 2j+1 its high, little-endian).
    int32 x pm.int16_lanes / 2."""
    from tvm import tirx

    n = pm.int16_lanes
    coef = tirx.reinterpret(f"int16x{n}", tirx.Broadcast(word, n // 2))
    return tirx.call_llvm_pure_intrin(f"int32x{n // 2}", pm.madd, pair, coef)


def to_codes(pm: PairMadd, vectors: list, lo: int, hi: int, out_dtype: str):
    """The 8-bit outputs, in order, of one or two vectors of int32 outputs, each given as the two
    halves of the in-lane interleave (in_lane_interleave's low, high): vpackssdw (which undoes the
    interleave), the clamp to [lo, hi] in int16 where it is narrower than out_dtype, the
    saturating pack (the clamp to the type) and one qword permute."""
    from tvm import tirx

    n = pm.int16_lanes
    info = np.iinfo(out_dtype)
    v16 = []
    for low, high in vectors:
        v = tirx.call_llvm_pure_intrin(f"int16x{n}", pm.pack16, low, high)  # outputs in order again
        if lo > info.min:
            v = tirx.max(v, tirx.Broadcast(tirx.const(lo, "int16"), n))
        if hi < info.max:
            v = tirx.min(v, tirx.Broadcast(tirx.const(hi, "int16"), n))
        v16.append(v)
    packed = tirx.call_llvm_pure_intrin(f"{out_dtype}x{2 * n}", pm.pack8[out_dtype], v16[0], v16[-1])
    return tirx.Shuffle([packed], in_order(n, len(v16)))


def te_group(pm: PairMadd, epi: Epilogue, consts, c, acc_p: list, acc_n: list):
    """The 8-bit outputs (in order) of channel c's accumulators: acc_p, acc_n each one or two
    int16 x pm.int16_lanes vectors (TIR expressions; consts: the epilogue's buffers)."""
    from tvm import tirx

    n = pm.int16_lanes
    form, one_sum = epi.split_form(), epi.sum_fits_int32()  # (a search over the constants: once a group)
    vectors = [[_requantized(pm, epi, form, one_sum, consts, c, tirx.Shuffle([a_p, a_n], in_lane_interleave(n, h)))
                for h in (False, True)] for a_p, a_n in zip(acc_p, acc_n)]
    return to_codes(pm, vectors, epi.lo, epi.hi, epi.out_dtype)


def in_order(n: int, vectors: int) -> list[int]:
    """The bytes of the 8-bit pack of `vectors` (1 or 2) int16 x n vectors, in output order: each
    128-bit block holds 8 outputs of the first vector, then 8 of the second (or of the first again)."""
    blocks = n // BLOCK
    qwords = [2 * j for j in range(blocks)] + [2 * j + 1 for j in range(blocks) if vectors == 2]
    return [q * 8 + b for q in qwords for b in range(8)]
