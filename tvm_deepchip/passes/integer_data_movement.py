"""Rewrite rules: ops that only move or select values run on the 8-bit values directly.

rule 1  pattern      OP(dequantize(q, s, z))            OP in {max_pool2d, reshape}
        check        per-tensor s and z (a monotonic map, so OP commutes with it)
        replacement  dequantize(OP(q), s, z)
rule 2  pattern      quantize(dequantize(q, s, z), s', z')
        check        s == s', z == z', same dtype (the round trip is the identity)
        replacement  q

Together they turn `dequantize -> max_pool -> quantize -> dequantize` into an 8-bit max pool
followed by one dequantize, so activations stay 8-bit between quantized layers.
"""
from __future__ import annotations

import numpy as np
from tvm import relax
from tvm.relax.dpl import is_const, is_op, rewrite_call, wildcard

from .patterns import const_value

_q = wildcard()
_dq = is_op("relax.dequantize")(_q, is_const(), is_const())
_moved = is_op("relax.nn.max_pool2d")(_dq) | is_op("relax.reshape")(_dq, wildcard())
_round_trip = is_op("relax.quantize")(_dq, is_const(), is_const())


def _scalars(*exprs):
    values = [const_value(e, {}) for e in exprs]
    if any(v is None or np.asarray(v).size != 1 for v in values):
        return None
    return [np.asarray(v).reshape(()).item() for v in values]


def _push_dequantize(expr, m):
    dq, moved = m[_dq], m[_moved]
    if _scalars(dq.args[1], dq.args[2]) is None:
        return expr  # per-channel scales do not commute with reshapes
    q = m[_q]
    if moved.op.name == "relax.reshape":
        inner = relax.op.reshape(q, moved.args[1])
    else:
        a = moved.attrs
        inner = relax.op.nn.max_pool2d(
            q, a.pool_size, a.strides, a.padding, a.dilation, a.ceil_mode, a.count_include_pad, a.layout, a.out_layout
        )
    return relax.op.dequantize(inner, dq.args[1], dq.args[2], axis=dq.attrs.axis, out_dtype=dq.attrs.out_dtype)


def _drop_round_trip(expr, m):
    dq, quant, q = m[_dq], m[_round_trip], m[_q]
    params = _scalars(dq.args[1], dq.args[2], quant.args[1], quant.args[2])
    if params is None or params[:2] != params[2:] or q.ty.dtype != quant.attrs.out_dtype:
        return expr
    return q


def integer_data_movement(func: relax.Function) -> relax.Function:
    func = rewrite_call(_moved, _push_dequantize, func)
    return rewrite_call(_round_trip, _drop_round_trip, func)


@relax.transform.function_pass(opt_level=0, name="DeepChipIntegerDataMovement")
class IntegerDataMovement:
    """Rules 1 and 2 on every Relax function of a module."""

    def transform_function(self, func: relax.Function, _mod, _ctx) -> relax.Function:
        return integer_data_movement(func)
