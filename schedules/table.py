"""The primitives whose schedule is one skeleton on every target family: a row each.

Their x86 and arm_cpu schedules differed only in the register width they were handed, which the
ISA class of the target in scope gives (tvm_deepchip/isa.py: 32 bytes on AVX2, 64 on AVX-512,
16 on NEON), so one row registers both families. A primitive whose schedule really differs
per family (the int8 conv's and dense's dot-product instructions) keeps its files in schedules/x86/ and
schedules/arm_cpu/.
"""
from __future__ import annotations

from tvm_deepchip import isa
from tvm_deepchip.primitives import (
    binary_pack,
    bwn_conv2d,
    bwn_dense,
    int8_max_pool,
    ternary_conv2d_delta,
    ternary_conv2d_packed,
    ternary_conv2d_sparse,
    ternary_dense_delta,
    ternary_dense_packed,
    ternary_dense_sparse,
    xnor_conv2d,
    xnor_dense,
    xnor_rows,
)

from . import TARGET_KEYS, register
from .common import schedule_bit_dot, schedule_dense, schedule_nothing, schedule_spatial, schedule_walked
from .xnor import schedule_pack, schedule_xnor
from .xnor_rows import schedule_xnor_rows

# rule -> (skeleton, its parameters)
SKELETONS = {
    # vector adds over consecutive output positions; each channel reads its own taps
    ternary_conv2d_sparse.RULE: (schedule_spatial, {"share_input": False}),
    # every channel reads the same input vectors: channels blocked
    ternary_conv2d_packed.RULE: (schedule_spatial, {"share_input": True}),
    # channels in parallel blocks; scalar sums over index lists
    ternary_dense_sparse.RULE: (schedule_dense, {}),
    # bit-planes through the dot-product instruction: the sums are a hand-built loop nest
    ternary_dense_packed.RULE: (schedule_bit_dot, {}),
    bwn_dense.RULE: (schedule_bit_dot, {}),  # ... one plane of binary weights
    bwn_conv2d.RULE: (schedule_bit_dot, {}),  # ... over a conv's windows
    # delta lists: the walk is a hand-built loop nest; layout, epilogue and crop scheduled here
    ternary_conv2d_delta.RULE: (schedule_walked, {}),
    ternary_dense_delta.RULE: (schedule_walked, {}),
    # binary inputs and weights: popcounts of XOR, vectors over output channels
    xnor_conv2d.RULE: (schedule_xnor, {}),
    xnor_dense.RULE: (schedule_xnor, {}),
    xnor_rows.RULE: (schedule_xnor_rows, {}),  # ... or over output positions (layers of few channels)
    binary_pack.PACK_RULE: (schedule_pack, {}),  # binarized inputs packed (bit planes, or the XNOR epilogue's form)
    # 8-bit max pool: a hand-built loop nest, vectors and split over cores included
    int8_max_pool.RULE: (schedule_nothing, {}),
}


def _row(skeleton, params):
    return lambda sch, block, knobs: skeleton(sch, block, knobs, isa.current(), **params)


for _rule, (_skeleton, _params) in SKELETONS.items():
    for _key in TARGET_KEYS:
        register(_key, _rule)(_row(_skeleton, _params))
