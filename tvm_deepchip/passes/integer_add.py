"""Rewrite rule: a quantized add (a residual connection) runs on the 8-bit values, integer only.

pattern     quantize(act(dequantize(q_a, s_a, z_a) + dequantize(q_b, s_b, z_b)), s_y, z_y)
            act in {none, relu, clip}
check       per-tensor scales and zero points, 8-bit inputs of one shape, and constants that
            fit int32 accurately (primitives/int8_add.fit)
replacement q_y = int8_add(q_a, q_b)       (emit_te, one PrimFunc named deepchip_int8_add)
            or, where q_a (or q_b) is a conv kernel's output that nothing else reads, that kernel
            with the add as its last stage: q_y = int8_add(conv(x), q_b), one PrimFunc, one call
            (the plan gives the kernel back: LowerQuantLayers names its layer in LAYER_ATTR)

Anything else (a float branch, per-channel scales, broadcasting) keeps TVM's float kernel.
It runs after the layers are lowered and TVM's common-subexpression elimination (an ONNX QDQ
graph quantizes a residual sum once per consumer: the duplicate is gone by then).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tvm
from tvm import relax
from tvm.relax.dpl import is_const, is_op, wildcard
from tvm.relax.expr_functor import PyExprMutator, mutator

from ..primitives import int8_add
from .layer_check import activation_bounds
from .lower_quant_layers import OPAQUE, planned_of
from .patterns import activation, const_value, read_counts, rewrite_functions

EIGHT_BITS = ("int8", "uint8")


@dataclass
class AddPattern:
    """The rule's pattern, its parts named (relu/clip_lo/clip_hi as layer_check reads them)."""

    q_a: object
    dq_a: object
    q_b: object
    dq_b: object
    relu: object
    clip_lo: object
    clip_hi: object
    root: object


def add_pattern() -> AddPattern:
    q_a, q_b = wildcard(), wildcard()
    dq_a = is_op("relax.dequantize")(q_a, is_const(), is_const())
    dq_b = is_op("relax.dequantize")(q_b, is_const(), is_const())
    act, relu, lo, hi = activation(is_op("relax.add")(dq_a, dq_b))
    root = is_op("relax.quantize")(act, is_const(), is_const())
    return AddPattern(q_a, dq_a, q_b, dq_b, relu, lo, hi, root)


def _quant_params(call, var2val, dtype) -> tuple | None:
    """(scale, zero point, dtype) of a quantize/dequantize call with per-tensor constants."""
    scale, zero = (const_value(a, var2val) for a in call.args[1:3])
    if scale is None or zero is None or np.asarray(scale).size != 1 or np.asarray(zero).size != 1:
        return None
    return float(np.asarray(scale).reshape(())), int(np.asarray(zero).reshape(())), dtype


def _static_shape(expr) -> tuple | None:
    try:
        return tuple(int(d) for d in expr.ty.shape)
    except (TypeError, AttributeError):  # a symbolic extent, or no shape known
        return None


def add_params(p: AddPattern, m, var2val) -> tuple | None:
    """((scale, zero point, dtype) of a, of b and of the output, (act lo, act hi)) of the matched
    add, or None where the check fails."""
    q_a, q_b = m[p.q_a], m[p.q_b]
    dtypes = [q_a.ty.dtype, q_b.ty.dtype, m[p.root].attrs.out_dtype]
    if any(str(d) not in EIGHT_BITS for d in dtypes):
        return None
    shape = _static_shape(q_a)
    if shape is None or shape != _static_shape(q_b):
        return None
    params = [_quant_params(m[dq], var2val, str(d)) for dq, d in ((p.dq_a, dtypes[0]), (p.dq_b, dtypes[1]), (p.root, dtypes[2]))]
    bounds = activation_bounds(p, m, var2val)
    if any(x is None for x in params) or bounds is None:
        return None
    return params, bounds


def add_constants(p: AddPattern, m, var2val) -> int8_add.AddConsts | None:
    """The integer form of the matched add, or None where the check fails."""
    found = add_params(p, m, var2val)
    if found is None:
        return None
    (a, b, y), (lo, hi) = found
    return int8_add.fit(a, b, y, act_lo=lo, act_hi=hi)


@mutator
class _Rewrite(PyExprMutator):
    def __init__(self, mod, func, plan):
        super().__init__(mod)
        self.mod, self.plan = mod, plan
        self.pat = add_pattern()
        self.var2val = relax.analysis.get_var2val(func)
        self.uses = read_counts(func)

    def visit_call_(self, call):
        m = self.pat.root.extract_matched_expr(call, self.var2val)
        found = None if m is None else add_params(self.pat, m, self.var2val)
        if found is None:
            return super().visit_call_(call)
        (a, b, y), (lo, hi) = found
        # the dequantizes' own arguments (variables), not the matched values behind them: those were
        # emitted already, and visiting them again would emit them twice
        var_a, var_b = (m[dq].args[0] for dq in (self.pat.dq_a, self.pat.dq_b))
        for conv, skip, (pc, ps) in ((var_a, var_b, (a, b)), (var_b, var_a, (b, a))):
            kernel = self._fusable(conv)
            consts = None if kernel is None else int8_add.fit(pc, ps, y, act_lo=lo, act_hi=hi)
            if consts is not None:
                return self._fused(kernel, self._producer(conv), skip, consts)
        consts = int8_add.fit(a, b, y, act_lo=lo, act_hi=hi)
        if consts is None:
            return super().visit_call_(call)
        q_a, q_b = (self.visit_expr(v) for v in (var_a, var_b))
        return self.builder_.emit_te(lambda ta, tb: int8_add.compute(ta, tb, consts), q_a, q_b,
                                     primfunc_name_hint="deepchip_int8_add")

    def _producer(self, var):
        """The call behind `var` (through variables bound to variables) if nothing but this add
        reads it or the variables on the way, else None."""
        value = var
        while isinstance(value, relax.Var):
            if self.uses.get(value, 0) != 1:
                return None
            value = self.var2val.get(value)
        return value

    def _fusable(self, var):
        """The planned conv kernel whose call `var` holds, if nothing but this add reads it."""
        planned = planned_of(self.mod, self.plan, self._producer(var))
        return planned.kernel if planned is not None and planned.layer.op == "conv2d" else None

    def _fused(self, kernel, conv_call, skip, consts):
        x, *weights = (self.visit_expr(v) for v in conv_call.args[1].fields)
        return self.builder_.emit_te(lambda tx, ts, *c: kernel.te_add(tx, ts, consts, *c),
                                     x, self.visit_expr(skip), *weights,
                                     primfunc_name_hint=f"deepchip_{kernel.primitive}_add", primfunc_attrs={"op_pattern": OPAQUE})


@tvm.transform.module_pass(opt_level=0, name="DeepChipIntegerAdd")
class IntegerAdd:
    """The rule on every Relax function of a module; `plan` (the LayerPlan LowerQuantLayers
    applied) lets an add fuse into the conv kernel it reads, None: standalone kernels only."""

    def __init__(self, plan=None):
        self.plan = plan

    def transform_module(self, mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        mod = rewrite_functions(mod, lambda m, func: _Rewrite(m, func, self.plan))
        return relax.transform.DeadCodeElimination()(mod)
