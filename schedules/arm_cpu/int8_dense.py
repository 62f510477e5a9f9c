"""int8_dense on arm_cpu: channel blocks in parallel (schedules/common.schedule_dense)."""
from tvm_deepchip.primitives import int8_dense

from .. import register
from ..common import schedule_dense
from . import ISA


@register("arm_cpu", int8_dense.RULE)
def schedule(sch, block, knobs):
    return schedule_dense(sch, block, knobs, ISA, product=True)
