"""Relax passes of tvm-deepchip, each a rewrite rule (pattern, check, replacement).

`lower_to_primitives(plan)` is the lowering as one pass: 8-bit data movement, then the plan's
layers replaced by our primitives (the plan is made by planner.plan_layers, before any rewrite).
"""
from __future__ import annotations

import tvm
from tvm import relax

from .integer_data_movement import IntegerDataMovement, integer_data_movement
from .lower_quant_layers import LowerQuantLayers
from .patterns import RULES, Rule, layer_pattern

__all__ = ["IntegerDataMovement", "LowerQuantLayers", "RULES", "Rule", "integer_data_movement", "layer_pattern",
           "lower_to_primitives"]


def lower_to_primitives(plan) -> tvm.transform.Pass:
    """Data movement on 8-bit values, then the plan's quantized layers as primitives."""
    return tvm.transform.Sequential(
        [IntegerDataMovement(), LowerQuantLayers(plan), relax.transform.DeadCodeElimination()],
        name="DeepChipLowerToPrimitives",
    )
