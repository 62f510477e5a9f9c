"""Relax passes of tvm-deepchip, each a rewrite rule (pattern, check, replacement).

`lower_to_primitives(plan)` is the lowering as one pass: 8-bit data movement, then the plan's
layers replaced by our primitives (the plan is made by planner.plan_layers, before any rewrite),
then TVM's common-subexpression elimination: ONNX QDQ graphs quantize a tensor once per consumer
(a residual block's sum: once for the next conv, once more for the next skip connection); with
the duplicate gone, TVM's fusion puts add, ReLU and quantize into one kernel writing 8-bit codes
instead of a float tensor and a separate quantize (19 of them in ResNet-44); then each such
quantized add becomes an integer kernel (integer_add.py), each 8-bit max pool read only by a
delta conv, and the model input's quantize read only by a first layer that can read floats, part
of that conv (conv_input_fusion.py), and each other max pool our branch-free pool (integer_pool.py).
"""
from __future__ import annotations

import tvm
from tvm import relax

from .conv_input_fusion import ConvInputFusion
from .integer_add import IntegerAdd
from .integer_data_movement import IntegerDataMovement, integer_data_movement
from .integer_pool import IntegerPool
from .lower_quant_layers import LowerQuantLayers
from .lower_xnor_layers import LowerXnorLayers
from .patterns import RULES, Rule, layer_pattern

__all__ = ["ConvInputFusion", "IntegerAdd", "IntegerDataMovement", "IntegerPool", "LowerQuantLayers", "LowerXnorLayers", "RULES", "Rule", "integer_data_movement", "layer_pattern",
           "lower_to_primitives"]


def lower_to_primitives(plan) -> tvm.transform.Pass:
    """Data movement on 8-bit values, the plan's quantized layers as primitives, then the
    quantized adds between them as integer kernels."""
    return tvm.transform.Sequential(
        [IntegerDataMovement(), LowerQuantLayers(plan), LowerXnorLayers(plan), relax.transform.EliminateCommonSubexpr(),
         relax.transform.DeadCodeElimination(), IntegerAdd(plan), ConvInputFusion(plan), IntegerPool()],
        name="DeepChipLowerToPrimitives",
    )
