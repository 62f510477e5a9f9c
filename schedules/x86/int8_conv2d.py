"""int8_conv2d on x86: dot products (schedules/dot_product) in the form of the target's ISA class
(tvm_deepchip/isa.py): VNNI `vpdpbusd` on uint8 codes where it has AVX512-VNNI, otherwise
`vpmaddwd` on int16 codes in channel pairs (AVX2: 8 positions a ymm; AVX-512BW: 16 a zmm). (TVM's AVX-512
fallback intrinsic saturates in int16 (vpmaddubsw), so it is not used.)"""
from tvm_deepchip import isa
from tvm_deepchip.primitives import int8_conv2d

from .. import register
from ..dot_product import schedule_dot
from . import pmaddwd, vnni


def _intrinsics(cls) -> dict:
    """operand dtype -> (tensor intrinsic, positions it covers) for an x86 ISA class."""
    if cls.dot == "vnni":
        return {"uint8": (vnni.NAME, 16)}
    if cls.dot == "pmaddwd":
        return {"int16": (pmaddwd.NAMES[cls.vector_bytes], cls.vector_bytes // 4)}
    return {}


@register("cpu", int8_conv2d.RULE)
def schedule(sch, block, knobs):
    cls = isa.current()
    return schedule_dot(sch, block, knobs, _intrinsics(cls), cls)
