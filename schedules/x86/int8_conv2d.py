"""int8_conv2d on x86: vector over consecutive output positions (schedules/common.schedule_spatial)."""
from .. import register
from ..common import schedule_spatial
from . import isa

SHARE = True  # every channel reads the same input vectors: block channels


@register("cpu", "deepchip_int8_conv2d")
def schedule(sch, block, knobs):
    return schedule_spatial(sch, block, knobs, isa(), share_input=SHARE)
