"""int8_conv2d on arm_cpu: dot products (schedules/dot_product), 16 output positions as four NEON
vectors of int32, the 4 products of a step unrolled."""
from .. import register
from ..dot_product import schedule_dot


@register("arm_cpu", "deepchip_int8_conv2d")
def schedule(sch, block, knobs):
    return schedule_dot(sch, block, knobs, None)
