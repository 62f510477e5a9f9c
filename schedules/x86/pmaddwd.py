"""x86 `vpmaddwd` as tensor intrinsics for the int8 kernels without VNNI (AVX2, AVX-512BW).

One step: int16 codes in channel pairs against int16 weights: each int32 lane gets the sum of two
products, added to the accumulator. Exact: 8-bit codes times int8 weights, summed in int32 (the
u8 x s8 vpmaddubsw would saturate in int16 for weights over 64: layers within that take
pmaddubsw.py's form). AVX2: 8 lanes a ymm; AVX-512BW: 16 a zmm. NAMES: lanes are output
positions (int8_conv2d: the pairs of `lanes` positions, one weight pair broadcast); CHANNEL_NAMES:
lanes are output channels (int8_dense: one input pair broadcast, the weight pairs of `lanes`
channels), over int16 weights (INT16_CHANNEL_NAMES) or over int8 weights sign-extended by the load
(CHANNEL_NAMES: for dense layers too large for the caches, whose time is mostly weight traffic;
int8_dense.weight_dtype). Registered at import (a tuning record that tensorizes with one names it).
"""
from ..dot_intrinsics import Shape, register

NAMES = {32: "deepchip_pmaddwd_8x2_positions_avx2", 64: "deepchip_pmaddwd_16x2_positions_avx512"}
CHANNEL_NAMES = {32: "deepchip_pmaddwd_8x2_channels_int8w_avx2", 64: "deepchip_pmaddwd_16x2_channels_int8w_avx512"}
INT16_CHANNEL_NAMES = {32: "deepchip_pmaddwd_8x2_channels_avx2", 64: "deepchip_pmaddwd_16x2_channels_avx512"}
_LLVM = {32: "llvm.x86.avx2.pmadd.wd", 64: "llvm.x86.avx512.pmaddw.d.512"}

for _bytes, _llvm in _LLVM.items():
    _lanes = _bytes // 4
    for _shape, _names, _weight in ((Shape.POSITIONS, NAMES, "int16"), (Shape.CHANNELS, CHANNEL_NAMES, "int8"),
                                    (Shape.CHANNELS, INT16_CHANNEL_NAMES, "int16")):
        register(_names[_bytes], _shape, _lanes, "int16", _llvm, f"int16x{_lanes * 2}", f"int16x{_lanes * 2}",
                 group=2, accumulates=False, weight=_weight)
