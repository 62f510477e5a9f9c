"""x86 `vpmaddwd` as a tensor intrinsic for the int8 conv without VNNI (AVX2, AVX-512BW).

One step: `positions` output positions x 2 input channels of int16 codes (the grouped flat layout
with channel pairs innermost, int8_conv2d.WIDE_GROUP) against one broadcast weight pair: each
int32 lane gets x[p, 0] * w[0] + x[p, 1] * w[1], added to the accumulator. Exact: 8-bit codes
times int8 weights, summed in int32 (the u8 x s8 vpmaddubsw would saturate in int16 for
weights over 64). AVX2: 8 positions per ymm; AVX-512BW: 16 per zmm.
Registered at import (a tuning record that tensorizes with it names it).
"""
from ..dot_product import register_positions_intrinsic

NAMES = {32: "deepchip_pmaddwd_8x2_positions_avx2", 64: "deepchip_pmaddwd_16x2_positions_avx512"}
_LLVM = {32: "llvm.x86.avx2.pmadd.wd", 64: "llvm.x86.avx512.pmaddw.d.512"}

for _bytes, _name in NAMES.items():
    _positions = _bytes // 4
    register_positions_intrinsic(_name, _positions, "int16", _LLVM[_bytes], f"int16x{_positions * 2}",
                                 f"int16x{_positions * 2}", group=2, accumulates=False)
