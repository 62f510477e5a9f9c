"""int8_conv2d on x86: dot products over 16 output positions (schedules/dot_product) with the
target's instruction (x86/dot_choice.py: VNNI `vpdpbusd` on uint8 codes, otherwise `vpmaddwd` on
int16 code pairs: AVX2 8 positions a ymm, AVX-512BW 16 a zmm). (TVM's AVX-512 fallback intrinsic
saturates in int16 (vpmaddubsw), so it is not used.)"""
from tvm_deepchip import isa
from tvm_deepchip.primitives import int8_conv2d

from .. import register
from ..dot_intrinsics import Shape
from ..dot_product import schedule_dot
from .dot_choice import intrinsics, pair_intrinsic


@register("cpu", int8_conv2d.RULE)
def schedule(sch, block, knobs):
    cls = isa.current()
    return schedule_dot(sch, block, knobs, intrinsics(cls, Shape.POSITIONS), cls, pair_intrinsic(cls, Shape.POSITIONS))
