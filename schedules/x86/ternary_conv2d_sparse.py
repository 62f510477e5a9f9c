"""ternary_conv2d_sparse on x86: vector over consecutive output positions (schedules/common.schedule_spatial)."""
from tvm_deepchip.primitives import ternary_conv2d_sparse

from .. import register
from ..common import schedule_spatial
from . import isa

SHARE = False  # each channel reads its own taps


@register("cpu", ternary_conv2d_sparse.RULE)
def schedule(sch, block, knobs):
    return schedule_spatial(sch, block, knobs, isa(), share_input=SHARE)
