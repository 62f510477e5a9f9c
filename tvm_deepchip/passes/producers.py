"""Where a kernel's output has one reader: the planned conv kernel behind a variable, for the
rules that fuse their op into that kernel as its last stage (integer_add: a residual add,
integer_pool: a max pool). One PrimFunc and one call instead of two, and the conv's output
becomes a buffer inside it.
"""
from __future__ import annotations

from tvm import relax

from .lower_quant_layers import LAYER_ATTR
from .patterns import call_tir_name


def uses(func) -> dict:
    """How many times each variable of `func` is read (bindings and the returned value)."""
    counts: dict = {}
    for block in func.body.blocks:
        for binding in block.bindings:
            for v in relax.analysis.free_vars(binding.value):
                counts[v] = counts.get(v, 0) + 1
    for v in relax.analysis.free_vars(func.body.body):
        counts[v] = counts.get(v, 0) + 1
    return counts


def sole_producer(var, counts: dict, var2val: dict):
    """The call behind `var` (through variables bound to variables) if nothing but one reader
    reads it or the variables on the way, else None."""
    value = var
    while isinstance(value, relax.Var):
        if counts.get(value, 0) != 1:
            return None
        value = var2val.get(value)
    return value


def planned_conv(mod, plan, call):
    """The planned conv kernel (primitives.LoweredLayer) that `call` runs, else None: a call_tir of
    a PrimFunc LowerQuantLayers made for a conv layer of `plan` (LAYER_ATTR names it)."""
    if plan is None or call_tir_name(call) == "":
        return None
    func = mod[call.args[0]]
    name = func.attrs.get(LAYER_ATTR) if func.attrs is not None else None
    planned = plan.lowered(str(name)) if name is not None else None
    return planned.kernel if planned is not None and planned.layer.op == "conv2d" else None
