"""x86 `vpmaddubsw` + `vpmaddwd` as tensor intrinsics for int8 kernels without VNNI (AVX2,
AVX-512BW) whose weights fit in 7 bits: the pair onnxruntime's MLAS and oneDNN use.

One step is VNNI's (uint8 codes in groups of 4 channels against int8 weights, each int32 lane the
sum of 4 products): `vpmaddubsw` multiplies unsigned by signed bytes and sums adjacent products
into int16 lanes, saturating; `vpmaddwd` against ones sums those pairs into int32 lanes. Exact
only while a pair sum fits int16: |w| <= NARROW_WEIGHT_MAX (2 * 255 * 64 = 32640), which binary
and ternary codes (BinaryConnect/BWN layers, the ternary dot form) and any layer of 7-bit weights
meet; the primitives choose this operand only for such layers (int8_weights.dot_operand). Against
`vpmaddwd` on int16 code pairs (pmaddwd.py), a step reads half the input bytes and issues 3
vector ops per 32 products instead of 4. AVX2: 8 lanes a ymm; AVX-512BW: 16 a zmm. Registered at
import, under exported names, in both shapes (NAMES: lanes are output positions, int8_conv2d;
CHANNEL_NAMES: output channels, int8_dense).
"""
from ..dot_intrinsics import Shape, register, register_pair_sums

NAMES = {32: "deepchip_pmaddubsw_8x4_positions_avx2", 64: "deepchip_pmaddubsw_16x4_positions_avx512"}
CHANNEL_NAMES = {32: "deepchip_pmaddubsw_8x4_channels_avx2", 64: "deepchip_pmaddubsw_16x4_channels_avx512"}
_LLVM = {32: ("llvm.x86.avx2.pmadd.ub.sw", "llvm.x86.avx2.pmadd.wd"),
         64: ("llvm.x86.avx512.pmaddubs.w.512", "llvm.x86.avx512.pmaddw.d.512")}

for _bytes, (_madd, _widen) in _LLVM.items():
    _lanes = _bytes // 4
    for _shape, _names in ((Shape.POSITIONS, NAMES), (Shape.CHANNELS, CHANNEL_NAMES)):
        register(_names[_bytes], _shape, _lanes, "uint8", _madd, f"int8x{_bytes}", f"int8x{_bytes}",
                 group=4, accumulates=False, widen=_widen)

# Binary and ternary weights: the pair sums accumulate in int16 (primitives/pair_sums), vpmaddubsw
# + vpaddw a step.
PAIR_NAMES = {32: "deepchip_pmaddubsw_8x4_pairs_avx2", 64: "deepchip_pmaddubsw_16x4_pairs_avx512"}
PAIR_CHANNEL_NAMES = {32: "deepchip_pmaddubsw_8x4_channel_pairs_avx2", 64: "deepchip_pmaddubsw_16x4_channel_pairs_avx512"}
for _bytes, (_madd, _) in _LLVM.items():
    for _shape, _names in ((Shape.POSITIONS, PAIR_NAMES), (Shape.CHANNELS, PAIR_CHANNEL_NAMES)):
        register_pair_sums(_names[_bytes], _shape, _bytes // 4, _madd, f"int8x{_bytes}")
