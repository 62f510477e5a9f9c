"""Rewrite rule: a max pool of 8-bit codes runs our branch-free kernel.

pattern      max_pool2d(q)                   q int8 or uint8 (integer_data_movement moved the
                                             pool before its dequantize)
check        primitives/int8_max_pool.covers: NCHW, static shape, no padding, dilation 1
replacement  int8_max_pool(q)                (emit_te, one PrimFunc named deepchip_max_pool)
             or, where q is a planned conv kernel's output that nothing else reads, that kernel
             with the pool as its last stage (int8_max_pool.te_stage): one PrimFunc, one call
             (deepchip_<primitive>_pool), the conv's output a buffer inside it

Anything else keeps TVM's pool.
"""
from __future__ import annotations

import tvm
from tvm import relax
from tvm.relax.expr_functor import PyExprMutator, mutator

from ..primitives import int8_max_pool
from .lower_quant_layers import OPAQUE
from .patterns import rewrite_functions
from .producers import planned_conv, sole_producer, uses

_MAX_POOL = tvm.ir.Op.get("relax.nn.max_pool2d")


def pool_of(call) -> int8_max_pool.Pool | None:
    """The kernel's Pool for a max_pool2d call, or None where the check fails."""
    if not isinstance(call, relax.Call) or not call.op.same_as(_MAX_POOL):
        return None
    ty, a = call.args[0].ty, call.attrs
    try:
        shape = [int(d) for d in ty.shape]
    except (TypeError, AttributeError):  # a symbolic extent, or no shape known
        return None
    if a.ceil_mode:
        return None
    return int8_max_pool.covers(shape, str(ty.dtype), a.pool_size, a.strides, a.padding, a.dilation,
                                str(a.layout), str(a.out_layout))


@mutator
class _Rewrite(PyExprMutator):
    def __init__(self, mod, func, plan):
        super().__init__(mod)
        self.mod, self.plan = mod, plan
        self.var2val = relax.analysis.get_var2val(func)
        self.uses = uses(func)

    def visit_call_(self, call):
        pool = pool_of(call)
        if pool is None:
            return super().visit_call_(call)
        conv_call = sole_producer(call.args[0], self.uses, self.var2val)
        kernel = planned_conv(self.mod, self.plan, conv_call)
        if kernel is not None:  # the pool as the conv kernel's last stage: one PrimFunc, one call
            x, *weights = (self.visit_expr(v) for v in conv_call.args[1].fields)
            return self.builder_.emit_te(lambda tx, *c: int8_max_pool.te_stage(kernel.te_func(tx, *c), pool), x, *weights,
                                         primfunc_name_hint=f"deepchip_{kernel.primitive}_pool",
                                         primfunc_attrs={"op_pattern": OPAQUE})
        x = self.visit_expr(call.args[0])
        return self.builder_.emit_te(lambda t: int8_max_pool.compute(t, pool), x,
                                     primfunc_name_hint="deepchip_max_pool")


@tvm.transform.module_pass(opt_level=0, name="DeepChipIntegerPool")
class IntegerPool:
    """The rule on every Relax function of a module; `plan` (the LayerPlan LowerQuantLayers
    applied) lets a pool fuse into the conv kernel it reads, None: standalone kernels only."""

    def __init__(self, plan=None):
        self.plan = plan

    def transform_module(self, mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        mod = rewrite_functions(mod, lambda m, func: _Rewrite(m, func, self.plan))
        return relax.transform.DeadCodeElimination()(mod)
