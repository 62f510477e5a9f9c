"""int8_conv2d on x86: dot products (schedules/dot_product), VNNI vpdpbusd where the
target has AVX512-VNNI. (TVM's AVX-512 fallback intrinsic saturates in int16, so it is not used:
without VNNI the products are plain vector multiply-adds, exact.)"""
from .. import register
from ..dot_product import schedule_dot
from . import vnni


def _intrinsics() -> dict:
    from tvm.target import Target, codegen

    target = Target.current(allow_none=True)
    if target is not None and codegen.target_has_features("avx512vnni", target):
        return {"uint8": (vnni.intrinsic(), 16)}
    return {}


@register("cpu", "deepchip_int8_conv2d")
def schedule(sch, block, knobs):
    return schedule_dot(sch, block, knobs, _intrinsics())
