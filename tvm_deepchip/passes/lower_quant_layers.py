"""Rewrite rule: a quantized conv2d/dense layer becomes one call to an integer primitive.

pattern     quantize(act(dequantize(q_x) (*) W + b))   act in {none, relu, clip}; W ternary or int8
check       passes/layer_check.py, run by the planner (planner.py) before any rewrite
replacement q_y = primitive(q_x, packed W, requantization constants)     (emit_te, one PrimFunc)

The float-output variant (no output quantize, e.g. the logits) ends in a float epilogue. The pass
decides nothing: it takes the plan (layer_plan.LayerPlan) and replaces each layer the plan lowers
by the kernel the plan holds for it, with the rule variant that matched it there. Every other
layer is left to TVM's own lowering; the plan's record says why.
"""
from __future__ import annotations

import tvm
from tvm import relax
from tvm.relax.expr_functor import PyExprMutator, mutator

from .layer_check import input_shape, weight_name
from .patterns import RULES, Rule, call_tir_name, rewrite_functions

# FuseOps must not merge neighbours into our kernels: the hand-written schedule expects its own
# blocks only (kOpaque in TVM's OpPatternKind).
OPAQUE = 8
# The PrimFunc attribute naming the layer a kernel lowers (integer_add.py fuses a residual add into it)
LAYER_ATTR = "deepchip_layer"


@mutator
class _Rewrite(PyExprMutator):
    """Replace, in one Relax function, the layers the plan lowers with `rule`."""

    def __init__(self, mod, func, rule: Rule, plan):
        super().__init__(mod)
        self.rule, self.pat, self.plan = rule, rule.pattern(), plan
        self.var2val = relax.analysis.get_var2val(func)
        self._done = {}  # the mutator may visit a binding twice: replace each layer once

    def visit_call_(self, call):
        key = hash(call)
        if key in self._done:
            return self._done[key]
        m = self.pat.root.extract_matched_expr(call, self.var2val)
        if m is not None:
            planned = self.plan.lowered(weight_name(self.pat, m))
            if planned is not None and planned.rule == self.rule:
                self._done[key] = self._replace(planned, m)
                return self._done[key]
        return super().visit_call_(call)

    def _replace(self, planned, m):
        if input_shape(self.pat, m) != planned.in_shape:
            raise RuntimeError(f"layer {planned.layer.name!r}: input shape {input_shape(self.pat, m)} "
                               f"differs from the plan's {planned.in_shape}")
        q_x = self.visit_expr(m[self.pat.q_in])
        kernel = planned.kernel
        consts = [relax.const(c, str(c.dtype)) for c in kernel.consts]  # relax.const narrows int64 otherwise
        return self.builder_.emit_te(
            kernel.te_func,
            q_x,
            *consts,
            primfunc_name_hint=f"deepchip_{kernel.primitive}",
            primfunc_attrs={"op_pattern": OPAQUE, LAYER_ATTR: planned.layer.name},
        )


def planned_of(mod, plan, call):
    """The plan's entry for the layer whose kernel `call` runs (a call_tir of a PrimFunc this pass
    emitted, named in LAYER_ATTR), else None."""
    if plan is None or call_tir_name(call) == "":
        return None
    func = mod[call.args[0]]
    name = func.attrs.get(LAYER_ATTR) if func.attrs is not None else None
    return plan.lowered(str(name)) if name is not None else None


@tvm.transform.module_pass(opt_level=0, name="DeepChipLowerQuantLayers")
class LowerQuantLayers:
    """Apply a plan: each rule variant in turn (RULES' order), dead code removed after each, so
    a layer lowered with its output quantize is gone before the float-output variants look."""

    def __init__(self, plan):
        self.plan = plan

    def transform_module(self, mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        for rule in RULES:
            mod = rewrite_functions(mod, lambda m, func, r=rule: _Rewrite(m, func, r, self.plan))
            mod = relax.transform.DeadCodeElimination()(mod)
        return mod
