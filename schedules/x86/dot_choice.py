"""Which x86 dot-product tensor intrinsic a build uses, by the ISA class of its target
(tvm_deepchip/isa.py) and the type of the codes it multiplies: VNNI `vpdpbusd` on uint8 codes
where it has AVX512-VNNI; otherwise `vpmaddwd` on int16 code pairs, or `vpmaddubsw` + `vpmaddwd`
on uint8 codes (the layers whose weights fit in 7 bits: int8_weights.dot_operand), at the class's
vector width; one chooser for both shapes."""
from ..dot_intrinsics import Shape
from . import pmaddubsw, pmaddwd, vnni


def intrinsics(cls, shape: Shape) -> dict:
    """(operand dtype, weight dtype) -> (tensor intrinsic of `shape`, lanes it covers) for an x86
    ISA class: the codes' type and the weights' type in memory select it (int16 codes meet int16
    weights, or, in a dense layer too large for the caches, int8 ones: pmaddwd.CHANNEL_NAMES)."""
    if cls.dot == "vnni":
        return {("uint8", "int8"): (vnni.NAME if shape is Shape.POSITIONS else vnni.CHANNELS_NAME, 16)}
    if cls.dot == "pmaddwd":
        wide = pmaddwd.NAMES if shape is Shape.POSITIONS else pmaddwd.INT16_CHANNEL_NAMES
        narrow = pmaddubsw.NAMES if shape is Shape.POSITIONS else pmaddubsw.CHANNEL_NAMES
        lanes = cls.vector_bytes // 4
        found = {("int16", "int16"): (wide[cls.vector_bytes], lanes), ("uint8", "int8"): (narrow[cls.vector_bytes], lanes)}
        if shape is Shape.CHANNELS:
            found["int16", "int8"] = (pmaddwd.CHANNEL_NAMES[cls.vector_bytes], lanes)
        return found
    return {}


def pair_intrinsic(cls, shape: Shape) -> tuple | None:
    """(tensor intrinsic of `shape`, lanes it covers) of the int16 pair sums (primitives/pair_sums)
    on an x86 ISA class whose kernels use them (IsaClass.pair_sums), else None."""
    if not cls.pair_sums:
        return None
    names = pmaddubsw.PAIR_NAMES if shape is Shape.POSITIONS else pmaddubsw.PAIR_CHANNEL_NAMES
    return names[cls.vector_bytes], cls.vector_bytes // 4
