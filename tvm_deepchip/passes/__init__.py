"""Relax passes of tvm-deepchip, each a rewrite rule (pattern, check, replacement)."""
from __future__ import annotations

import tvm
from tvm import relax

from ..layer_plan import LayerPlan
from .integer_data_movement import integer_data_movement
from .lower_quant_layers import LowerQuantLayers
from .patterns import layer_pattern


def _per_function(mod: tvm.IRModule, fn) -> tvm.IRModule:
    for gv, func in list(mod.functions.items()):
        if isinstance(func, relax.Function):
            mod = fn(mod, gv, func)
    return mod


def lower_to_primitives(mod: tvm.IRModule, options) -> tvm.IRModule:
    """Data movement on 8-bit values, then quantized layers with an 8-bit output, then the
    float-output ones (after dead-code elimination, so only true float-output layers remain).
    `options.plan` becomes the plan of the imported module's layers, filled in by the lowering."""
    options.plan = LayerPlan.of(mod)

    def movement(mod, gv, func):
        mod[gv] = integer_data_movement(func)
        return mod

    def layers(quantized_output):
        variants = [(op, True) for op in ("conv2d", "dense")]
        if not quantized_output:
            variants += [(op, False) for op in ("conv2d", "dense")]

        def run(mod, gv, func):
            for op, with_bias in variants:
                func = mod[gv]
                pattern = layer_pattern(op, quantized_output, with_bias)
                m = LowerQuantLayers(mod, func, pattern, options)
                try:
                    m.builder_.update_func(gv, m.visit_expr(func))
                except Exception:
                    # the FFI turns our errors raised inside the visitor into RuntimeError
                    if options.failure is not None:
                        raise options.failure from None
                    raise
                mod = relax.transform.DeadCodeElimination()(m.builder_.get())
            return mod

        return run

    mod = _per_function(mod, movement)
    mod = _per_function(mod, layers(True))
    mod = _per_function(mod, layers(False))
    return relax.transform.DeadCodeElimination()(mod)
