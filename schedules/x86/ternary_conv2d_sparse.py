"""ternary_conv2d_sparse on x86: vector over consecutive output positions (schedules/common.schedule_spatial)."""
from .. import register
from ..common import schedule_spatial
from . import isa

SHARE = False  # each channel reads its own taps


@register("cpu", "deepchip_ternary_conv2d_sparse")
def schedule(sch, block, knobs):
    return schedule_spatial(sch, block, knobs, isa(), share_input=SHARE)
