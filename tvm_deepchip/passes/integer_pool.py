"""Rewrite rule: a max pool of 8-bit codes runs our branch-free kernel.

pattern      max_pool2d(q)                   q int8 or uint8 (integer_data_movement moved the
                                             pool before its dequantize)
check        primitives/int8_max_pool.covers: NCHW, static shape, no padding, dilation 1
replacement  int8_max_pool(q)                (emit_te, one PrimFunc named deepchip_max_pool)

Anything else keeps TVM's pool.

Tried and not kept (commits 6006b7e, bfb459f, reverted): the pool as the last stage of the conv
kernel it reads (one PrimFunc, one call). AMD EPYC znver5, AVX-512 VNNI build, the two builds in
one process, turns: digits model 0.97x the separate kernels' time, SVHN ConvNet 0.98-0.99x, but
its BWN form 1.05-1.07x (four pairs of runs), AlexNet AVX2 build 0.99x; and such a kernel is no
tuning task (MetaSchedule cannot store the pool's vector shuffles).
"""
from __future__ import annotations

import tvm
from tvm import relax
from tvm.relax.expr_functor import PyExprMutator, mutator

from ..primitives import int8_max_pool
from .patterns import rewrite_functions

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
    def visit_call_(self, call):
        pool = pool_of(call)
        if pool is None:
            return super().visit_call_(call)
        x = self.visit_expr(call.args[0])
        return self.builder_.emit_te(lambda t: int8_max_pool.compute(t, pool), x,
                                     primfunc_name_hint="deepchip_max_pool")


@tvm.transform.module_pass(opt_level=0, name="DeepChipIntegerPool")
class IntegerPool:
    """The rule on every Relax function of a module."""

    def transform_module(self, mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        return rewrite_functions(mod, lambda m, _func: _Rewrite(m))
