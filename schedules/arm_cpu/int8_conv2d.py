"""int8_conv2d on arm_cpu: dot products (schedules/dot_product), `sdot` on 4 positions x 4
channels where the target's ISA class has dotprod (int8 operands: the aarch64 presets feed them
signed); otherwise 16 positions as four NEON vectors of int32, the 4 products of a step unrolled."""
from tvm_deepchip import isa
from tvm_deepchip.primitives import int8_conv2d

from .. import register
from ..dot_product import schedule_dot
from . import sdot


@register("arm_cpu", int8_conv2d.RULE)
def schedule(sch, block, knobs):
    cls = isa.current()
    intrinsics = {("int8", "int8"): (sdot.NAME, 4)} if cls.dot == "sdot" else {}
    return schedule_dot(sch, block, knobs, intrinsics, cls)
