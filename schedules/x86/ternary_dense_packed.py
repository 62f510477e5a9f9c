"""ternary_dense_packed on x86: channel blocks in parallel (schedules/common.schedule_dense)."""
from tvm_deepchip.primitives import ternary_dense_packed

from .. import register
from ..common import schedule_dense
from . import isa


@register("cpu", ternary_dense_packed.RULE)
def schedule(sch, block, knobs):
    return schedule_dense(sch, block, knobs, isa(), product=False)
