"""int8_conv2d on arm_cpu: dot products (schedules/dot_product), `sdot` on 4 positions x 4
channels where the target has dotprod (int8 operands: the aarch64 preset feeds them signed);
otherwise 16 positions as four NEON vectors of int32, the 4 products of a step unrolled."""
from .. import register
from ..dot_product import schedule_dot, when_target_has
from . import sdot


@register("arm_cpu", "deepchip_int8_conv2d")
def schedule(sch, block, knobs):
    return schedule_dot(sch, block, knobs, when_target_has("dotprod", {"int8": (sdot.NAME, 4)}))
