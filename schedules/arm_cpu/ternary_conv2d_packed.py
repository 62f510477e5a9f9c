"""ternary_conv2d_packed on arm_cpu: vector over consecutive output positions (schedules/common.schedule_spatial)."""
from tvm_deepchip.primitives import ternary_conv2d_packed

from .. import register
from ..common import schedule_spatial
from . import ISA

SHARE = True  # every channel reads the same input vectors: block channels


@register("arm_cpu", ternary_conv2d_packed.RULE)
def schedule(sch, block, knobs):
    return schedule_spatial(sch, block, knobs, ISA, share_input=SHARE)
