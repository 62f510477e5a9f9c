"""ternary_conv2d_packed on x86: vector over consecutive output positions (schedules/common.schedule_spatial)."""
from tvm_deepchip.primitives import ternary_conv2d_packed

from .. import register
from ..common import schedule_spatial
from . import isa

SHARE = True  # every channel reads the same input vectors: block channels


@register("cpu", ternary_conv2d_packed.RULE)
def schedule(sch, block, knobs):
    return schedule_spatial(sch, block, knobs, isa(), share_input=SHARE)
