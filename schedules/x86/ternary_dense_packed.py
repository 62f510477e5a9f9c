"""ternary_dense_packed on x86: channel blocks in parallel (schedules/common.schedule_dense)."""
from .. import register
from ..common import schedule_dense
from . import isa


@register("cpu", "deepchip_ternary_dense_packed")
def schedule(sch, block, knobs):
    return schedule_dense(sch, block, knobs, isa(), product=False)
