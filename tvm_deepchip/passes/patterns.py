"""Relax dataflow patterns for the quantized-ONNX form (DEVELOPERS.md) as TVM imports it.

TVM's ONNX frontend turns QuantizeLinear/DequantizeLinear into `relax.quantize`/`relax.dequantize`,
Conv into `nn.conv2d` + `add(reshape(bias))`, Gemm into `matmul(x, permute_dims(w)) + bias`,
Relu into `nn.relu`, and Clip into two `call_tir`s of TE `maximum`/`minimum` whose bound is
`where(isnan(c), -inf, c)`. The patterns below name each piece so a rewrite can read it back.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tvm
from tvm import relax
from tvm.relax.dpl import is_const, is_op, is_tuple, wildcard


def _qdq_input():
    q = wildcard()
    return q, is_op("relax.dequantize")(q, is_const(), is_const())


def _weight():
    """A float constant (ternary or float weight) or a dequantized int8 constant."""
    dq = is_op("relax.dequantize")(is_const(), is_const(), is_const())
    w = is_const() | dq
    return w, dq


def _bias_add(core):
    bias = is_const() | is_op("relax.reshape")(is_const(), wildcard())
    return core | is_op("relax.add")(core, bias), bias


def activation(y):
    """Optional ReLU or Clip (as the ONNX frontend emits it) after `y`."""
    relu = is_op("relax.nn.relu")(y)
    lo = is_op("relax.call_tir")(wildcard(), is_tuple([y, wildcard()]))
    hi = is_op("relax.call_tir")(wildcard(), is_tuple([lo, wildcard()]))
    return y | relu | lo | hi, relu, lo, hi


@dataclass
class LayerParts:
    """The sub-patterns every layer rule names (patterns.LayerPattern, xnor_match.XnorPattern):
    the layer's op, its root, its weight (transposed for Gemm), the op, bias and activation."""

    op: str
    root: object
    weight: object
    permute: object
    core: object
    bias: object
    relu: object
    clip_lo: object
    clip_hi: object


@dataclass
class LayerPattern(LayerParts):
    """Pattern of one quantized layer, rooted at its output `quantize` (or its bias add when
    the output stays float, as for the logits). Fields name the sub-patterns."""

    q_in: object = None
    dq_in: object = None
    weight_dq: object = None
    q_out: object | None = None


def layer_pattern(op: str, quantized_output: bool, with_bias: bool = True) -> LayerPattern:
    """Quantized output: rooted at the output quantize (bias optional). Float output: rooted at
    the bias add (with_bias) or the bare conv/matmul, so one layer never matches twice."""
    q_in, dq_in = _qdq_input()
    weight, weight_dq = _weight()
    permute = is_op("relax.permute_dims")(weight)  # Gemm transB=1: W[Co, K] transposed
    if op == "conv2d":
        core = is_op("relax.nn.conv2d")(dq_in, weight)
    else:
        core = is_op("relax.matmul")(dq_in, permute | weight)
    y, bias = _bias_add(core)
    if not quantized_output:
        bias = is_const() | is_op("relax.reshape")(is_const(), wildcard())
        y = is_op("relax.add")(core, bias) if with_bias else core
        return LayerPattern(op, y, weight, permute, core, bias, None, None, None, q_in=q_in, dq_in=dq_in, weight_dq=weight_dq)
    act, relu, lo, hi = activation(y)
    q_out = is_op("relax.quantize")(act, is_const(), is_const())
    return LayerPattern(op, q_out, weight, permute, core, bias, relu, lo, hi, q_in=q_in, dq_in=dq_in, weight_dq=weight_dq,
                        q_out=q_out)


@dataclass(frozen=True)
class Rule:
    """One variant of the layer-lowering rule: the op, whether the output is quantized (rooted at
    the output quantize, bias optional) or float (rooted at the bias add, or the bare op)."""

    op: str
    quantized_output: bool
    with_bias: bool = True

    def pattern(self) -> LayerPattern:
        return layer_pattern(self.op, self.quantized_output, self.with_bias)


# In the order they apply: quantized-output layers first, then float-output ones (of a layer
# that is both, the quantized form wins), the bias-add root before the bare op.
RULES = (
    Rule("conv2d", True), Rule("dense", True),
    Rule("conv2d", False), Rule("dense", False),
    Rule("conv2d", False, False), Rule("dense", False, False),
)


_FOLDABLE = {
    "relax.isnan": np.isnan,
    "relax.where": np.where,
    "relax.reshape": lambda a, shape: a.reshape([int(s) for s in shape.values]),
    "relax.negative": np.negative,
}


def const_value(expr, var2val) -> np.ndarray | None:
    """Numpy value of a constant expression (constants through a few pure ops), else None."""
    while isinstance(expr, relax.Var) and expr in var2val:
        expr = var2val[expr]
    if isinstance(expr, tvm.ir.expr.Constant):
        return expr.value.numpy()
    if isinstance(expr, relax.ShapeExpr):
        return expr
    if isinstance(expr, relax.Call) and isinstance(expr.op, tvm.ir.Op):
        fn = _FOLDABLE.get(expr.op.name)
        if fn is None:
            return None
        args = [const_value(a, var2val) for a in expr.args]
        if any(a is None for a in args):
            return None
        return np.asarray(fn(*args))
    return None


def rewrite_functions(mod: tvm.IRModule, mutator_for) -> tvm.IRModule:
    """Every Relax function of `mod` through the PyExprMutator `mutator_for(mod, func)` makes over
    the module as rewritten so far (each function's rewrite sees the ones before it); the module
    after the last."""
    for gv, func in list(mod.functions.items()):
        if isinstance(func, relax.Function):
            rewrite = mutator_for(mod, func)
            rewrite.builder_.update_func(gv, rewrite.visit_expr(func))
            mod = rewrite.builder_.get()
    return mod


def call_tir_name(call) -> str:
    """Name hint of the PrimFunc a call_tir calls ('' if not a call_tir)."""
    if isinstance(call, relax.Call) and getattr(call.op, "name", "") == "relax.call_tir":
        return call.args[0].name_hint
    return ""


def read_counts(func) -> dict:
    """How many times each variable of `func` is read (bindings and the returned value)."""
    counts: dict = {}
    for block in func.body.blocks:
        for binding in block.bindings:
            for v in relax.analysis.free_vars(binding.value):
                counts[v] = counts.get(v, 0) + 1
    for v in relax.analysis.free_vars(func.body.body):
        counts[v] = counts.get(v, 0) + 1
    return counts
