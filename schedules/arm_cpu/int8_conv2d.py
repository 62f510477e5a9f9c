"""int8_conv2d on arm_cpu: vector over consecutive output positions (schedules/common.schedule_spatial)."""
from .. import register
from ..common import schedule_spatial
from . import ISA

SHARE = True  # every channel reads the same input vectors: block channels


@register("arm_cpu", "deepchip_int8_conv2d")
def schedule(sch, block, knobs):
    return schedule_spatial(sch, block, knobs, ISA, share_input=SHARE)
