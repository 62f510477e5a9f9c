"""int8_conv2d on x86: dot products (schedules/dot_product), VNNI vpdpbusd where the
target has AVX512-VNNI. (TVM's AVX-512 fallback intrinsic saturates in int16, so it is not used:
without VNNI the products are plain vector multiply-adds, exact.)"""
from .. import register
from ..dot_product import schedule_dot, when_target_has
from . import vnni


@register("cpu", "deepchip_int8_conv2d")
def schedule(sch, block, knobs):
    return schedule_dot(sch, block, knobs, when_target_has("avx512vnni", {"uint8": (vnni.NAME, 16)}))
