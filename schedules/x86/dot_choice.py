"""Which x86 dot-product tensor intrinsic a build uses, by the ISA class of its target
(tvm_deepchip/isa.py): VNNI `vpdpbusd` on uint8 codes where it has AVX512-VNNI, otherwise
`vpmaddwd` on int16 code pairs at the class's vector width; one chooser for both shapes."""
from ..dot_intrinsics import Shape
from . import pmaddwd, vnni


def intrinsics(cls, shape: Shape) -> dict:
    """operand dtype -> (tensor intrinsic of `shape`, lanes it covers) for an x86 ISA class."""
    if cls.dot == "vnni":
        return {"uint8": (vnni.NAME if shape is Shape.POSITIONS else vnni.CHANNELS_NAME, 16)}
    if cls.dot == "pmaddwd":
        names = pmaddwd.NAMES if shape is Shape.POSITIONS else pmaddwd.CHANNEL_NAMES
        return {"int16": (names[cls.vector_bytes], cls.vector_bytes // 4)}
    return {}
