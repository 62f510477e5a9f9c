"""ternary_dense_sparse on arm_cpu: channel blocks in parallel (schedules/common.schedule_dense)."""
from tvm_deepchip.primitives import ternary_dense_sparse

from .. import register
from ..common import schedule_dense
from . import ISA


@register("arm_cpu", ternary_dense_sparse.RULE)
def schedule(sch, block, knobs):
    return schedule_dense(sch, block, knobs, ISA, product=False)
