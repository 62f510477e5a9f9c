"""int8_dense (and ternary_dense_dot, the same kernel over two weight planes) on x86: dot products
over 16 output channels (schedules/dense_dot) with the target's instruction (x86/dot_choice.py:
VNNI `vpdpbusd` on uint8 codes, otherwise `vpmaddwd` on int16 code pairs: AVX2 8 channels a ymm,
AVX-512BW 16 a zmm)."""
from tvm_deepchip import isa
from tvm_deepchip.primitives import int8_dense, ternary_conv2d_dot, ternary_dense_dot

from .. import register
from ..dense_dot import schedule_dense_dot
from ..dot_intrinsics import Shape
from .dot_choice import intrinsics, pair_intrinsic


@register("cpu", ternary_conv2d_dot.RULE)
@register("cpu", ternary_dense_dot.RULE)
@register("cpu", int8_dense.RULE)
def schedule(sch, block, knobs):
    cls = isa.current()
    return schedule_dense_dot(sch, block, knobs, intrinsics(cls, Shape.CHANNELS), cls, pair_intrinsic(cls, Shape.CHANNELS))
