"""int8_dense on x86: dot products over 16 output channels (schedules/dense_dot) in the form of the
target's ISA class (tvm_deepchip/isa.py): VNNI `vpdpbusd` on uint8 codes where it has AVX512-VNNI,
otherwise `vpmaddwd` on int16 codes in pairs (AVX2: 8 channels a ymm; AVX-512BW: 16 a zmm)."""
from tvm_deepchip import isa
from tvm_deepchip.primitives import int8_dense

from .. import register
from ..dense_dot import schedule_dense_dot
from . import pmaddwd, vnni


def _intrinsics(cls) -> dict:
    """operand dtype -> (channels-shape tensor intrinsic, channels it covers) for an x86 ISA class."""
    if cls.dot == "vnni":
        return {"uint8": (vnni.CHANNELS_NAME, 16)}
    if cls.dot == "pmaddwd":
        return {"int16": (pmaddwd.CHANNEL_NAMES[cls.vector_bytes], cls.vector_bytes // 4)}
    return {}


@register("cpu", int8_dense.RULE)
def schedule(sch, block, knobs):
    cls = isa.current()
    return schedule_dense_dot(sch, block, knobs, _intrinsics(cls), cls)
