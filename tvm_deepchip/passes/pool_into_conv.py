"""Rewrite rule: a max pool of 8-bit codes read only by a conv kernel becomes part of that kernel.

pattern      conv(max_pool2d(q), consts...)   conv: a planned layer's kernel (LowerQuantLayers names
                                              its layer in LAYER_ATTR) that can read a pool's input
                                              (LoweredLayer.te_pooled: the delta convs whose tasks
                                              copy their own input rows); nothing else reads the pool
check        integer_pool.pool_of: 8-bit NCHW, static shape, no padding, dilation 1
replacement  conv'(q, consts...)              (emit_te, one PrimFunc: each task takes a code as its
                                              window's max while it copies its rows)

Why: the pool ran as its own kernel on one core between two parallel layers, reading the codes
both cores had written. A conv's tasks copy their input rows anyway; taking the window's max
on the way costs them a few vector ops a row. Measured (AMD EPYC znver4, SVHN ConvNet, its two
2x2 pools into conv2 and conv4, the two builds in one process, 40 turns of 50 runs, medians of
the paired ratios, the same outputs): 0.968x the time (AVX-512 VNNI build), 0.982x (AVX2 build).
AlexNet's convs are one parallel walk over a shared layout (no row tasks): their pools stay.
Anything else keeps its pool (integer_pool.py).
"""
from __future__ import annotations

import tvm
from tvm import relax
from tvm.relax.expr_functor import PyExprMutator, mutator

from .integer_pool import pool_of
from .lower_quant_layers import LAYER_ATTR, OPAQUE
from .patterns import call_tir_name, read_counts, rewrite_functions


@mutator
class _Rewrite(PyExprMutator):
    def __init__(self, mod, func, plan):
        super().__init__(mod)
        self.mod, self.plan = mod, plan
        self.var2val = relax.analysis.get_var2val(func)
        self.uses = read_counts(func)

    def visit_call_(self, call):
        kernel = self._kernel(call)
        x, *weights = call.args[1].fields if kernel is not None else (None,)
        pool_call = self.var2val.get(x) if isinstance(x, relax.Var) and self.uses.get(x, 0) == 1 else None
        pool = pool_of(pool_call)
        if pool is None:
            return super().visit_call_(call)
        args = [self.visit_expr(pool_call.args[0])] + [self.visit_expr(w) for w in weights]
        return self.builder_.emit_te(lambda t, *c: kernel.te_pooled(t, pool, *c), *args,
                                     primfunc_name_hint=f"deepchip_{kernel.primitive}_pooled",
                                     primfunc_attrs={"op_pattern": OPAQUE})

    def _kernel(self, call):
        """The planned kernel `call` runs, where it can read a pool's input, else None."""
        if call_tir_name(call) == "":
            return None
        func = self.mod[call.args[0]]
        name = func.attrs.get(LAYER_ATTR) if func.attrs is not None else None
        planned = self.plan.lowered(str(name)) if name is not None else None
        return planned.kernel if planned is not None and planned.kernel.te_pooled is not None else None


@tvm.transform.module_pass(opt_level=0, name="DeepChipPoolIntoConv")
class PoolIntoConv:
    """The rule on every Relax function of a module, for the kernels of `plan` (the LayerPlan
    LowerQuantLayers applied)."""

    def __init__(self, plan):
        self.plan = plan

    def transform_module(self, mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        mod = rewrite_functions(mod, lambda m, func: _Rewrite(m, func, self.plan))
        return relax.transform.DeadCodeElimination()(mod)
