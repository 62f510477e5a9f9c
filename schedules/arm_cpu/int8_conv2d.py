"""int8_conv2d on arm_cpu: blocked dot products (schedules/dot_product), channels as NEON vectors."""
from .. import register
from ..dot_product import schedule_dot
from . import ISA


@register("arm_cpu", "deepchip_int8_conv2d")
def schedule(sch, block, knobs):
    return schedule_dot(sch, block, knobs, None, ISA.vector_bytes)
