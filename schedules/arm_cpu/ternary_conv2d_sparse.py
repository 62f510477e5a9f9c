"""ternary_conv2d_sparse on arm_cpu: vector over consecutive output positions (schedules/common.schedule_spatial)."""
from tvm_deepchip.primitives import ternary_conv2d_sparse

from .. import register
from ..common import schedule_spatial
from . import ISA

SHARE = False  # each channel reads its own taps


@register("arm_cpu", ternary_conv2d_sparse.RULE)
def schedule(sch, block, knobs):
    return schedule_spatial(sch, block, knobs, ISA, share_input=SHARE)
