"""int8_dense (and ternary_dense_dot, the same kernel over two weight planes) on arm_cpu: dot products
over 16 output channels (schedules/dense_dot), `sdot` on 4 channels x 4 codes where the target's
ISA class has dotprod (int8 operands); otherwise 16 channels as four NEON vectors of int32, the 4
products of a step unrolled."""
from tvm_deepchip import isa
from tvm_deepchip.primitives import int8_dense, ternary_conv2d_dot, ternary_dense_dot

from .. import register
from ..dense_dot import schedule_dense_dot
from . import sdot


@register("arm_cpu", ternary_conv2d_dot.RULE)
@register("arm_cpu", ternary_dense_dot.RULE)
@register("arm_cpu", int8_dense.RULE)
def schedule(sch, block, knobs):
    cls = isa.current()
    intrinsics = {("int8", "int8"): (sdot.CHANNELS_NAME, 4)} if cls.dot == "sdot" else {}
    return schedule_dense_dot(sch, block, knobs, intrinsics, cls)
