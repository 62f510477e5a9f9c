"""int8_dense on x86: channel blocks in parallel (schedules/common.schedule_dense)."""
from tvm_deepchip.primitives import int8_dense

from .. import register
from ..common import schedule_dense
from . import isa


@register("cpu", int8_dense.RULE)
def schedule(sch, block, knobs):
    return schedule_dense(sch, block, knobs, isa(), product=True)
