"""Rewrite rules: a conv kernel reads the input of the op that produces its input, where nothing
else reads that op's output and the kernel can do the op's work as it copies its input.

pattern      conv(max_pool2d(q), consts...)     conv: a planned layer's kernel (LowerQuantLayers
                                                names its layer in LAYER_ATTR) with
                                                LoweredLayer.te_pooled (the delta convs whose tasks
                                                copy their own input rows; the int8 convs whose
                                                grouped layout copies rows; the small-map forms:
                                                sparse rows, packed windows, the dot form)
check        integer_pool.pool_of: 8-bit NCHW, static shape, no padding, dilation 1
replacement  conv'(q, consts...)                each task takes a code as its window's max

pattern      conv(quantize(x, scale, zp), ...)  conv: a planned kernel with LoweredLayer.
                                                te_quantized (the int8 convs whose layout copy
                                                reads whole rows: a model's first layer)
check        input_quantize.of: one float32 scale and zero point, 8-bit codes, x float32
replacement  conv'(x, consts...)                the layout copy quantizes the floats it reads

Why: the pool, or the quantize of the model's input, ran as its own kernel on one core between
parallel layers, and the conv's tasks then read back the codes it wrote from the other core. A
conv's tasks copy their input rows anyway; a window's max or a quantize on the way costs them a
few vector ops a row. Measured (AMD EPYC znver4, the two builds in one process, 40 turns of 50
runs, medians of the paired ratios, the same outputs): SVHN ConvNet's two 2x2 pools into conv2
and conv4 0.968x the time (AVX-512 VNNI build), 0.982x (AVX2 build); then the quantize, each row
quantized once (column_fold._quantize_row): LeNet 0.983x / 0.960x (AVX-512 VNNI / AVX2 builds),
SVHN ConvNet 0.986x / 0.988x, the digits model 0.999x / 0.977x, the MLP (int8_dense) 0.972x and
0.988x (AVX-512, two runs), ResNet-44 1.005x (q1-q3 0.994-1.014). The BWN SVHN ConvNet's first
pool into its int8 conv2 (grouped layout: each row staged, then interleaved): 0.997x (AVX-512
VNNI), 0.970x (AVX2 build). The digits model's pools before its 2x2 and 1x1 convs (sparse rows
and the dot form on AVX2, packed windows on AVX-512): 0.986x (AVX2 build), 0.980x (AVX-512 VNNI).
Quantized as read, every float took one quantize per kernel column
(LeNet 1.017x, SVHN 0.994x). AlexNet's convs are one
parallel walk over a shared layout (no row tasks): their pools stay, as does its first layer's
quantize (its layout reads every fourth pixel). Anything else keeps its op (integer_pool.py,
TVM's quantize).
"""
from __future__ import annotations

import tvm
from tvm import relax
from tvm.relax.expr_functor import PyExprMutator, mutator

from ..primitives import input_quantize
from .integer_pool import pool_of
from .lower_quant_layers import OPAQUE, planned_of
from .patterns import const_value, read_counts, rewrite_functions

_QUANTIZE = tvm.ir.Op.get("relax.quantize")


@mutator
class _Rewrite(PyExprMutator):
    def __init__(self, mod, func, plan):
        super().__init__(mod)
        self.mod, self.plan = mod, plan
        self.var2val = relax.analysis.get_var2val(func)
        self.uses = read_counts(func)

    def visit_call_(self, call):
        planned = planned_of(self.mod, self.plan, call)
        if planned is None:
            return super().visit_call_(call)
        kernel = planned.kernel
        x, *weights = call.args[1].fields
        producer = self.var2val.get(x) if isinstance(x, relax.Var) and self.uses.get(x, 0) == 1 else None
        fused = None
        if kernel.te_pooled is not None and (pool := pool_of(producer)) is not None:
            fused = ("pooled", lambda t, *c: kernel.te_pooled(t, pool, *c))
        elif kernel.te_quantized is not None and (quant := self._quantize_of(producer)) is not None:
            fused = ("quantized", lambda t, *c: kernel.te_quantized(t, quant, *c))
        if fused is None:
            return super().visit_call_(call)
        suffix, te_func = fused
        args = [self.visit_expr(producer.args[0])] + [self.visit_expr(w) for w in weights]
        return self.builder_.emit_te(te_func, *args, primfunc_name_hint=f"deepchip_{kernel.primitive}_{suffix}",
                                     primfunc_attrs={"op_pattern": OPAQUE})

    def _quantize_of(self, call):
        """The InputQuantize of a quantize call of float32 values, or None."""
        if not isinstance(call, relax.Call) or not call.op.same_as(_QUANTIZE):
            return None
        if str(call.args[0].ty.dtype) != "float32":
            return None
        scale, zero = (const_value(a, self.var2val) for a in call.args[1:3])
        if scale is None or zero is None:
            return None
        return input_quantize.of(scale, zero, str(call.attrs.out_dtype))


@tvm.transform.module_pass(opt_level=0, name="DeepChipConvInputFusion")
class ConvInputFusion:
    """The rules on every Relax function of a module, for the kernels of `plan` (the LayerPlan
    LowerQuantLayers applied)."""

    def __init__(self, plan):
        self.plan = plan

    def transform_module(self, mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        mod = rewrite_functions(mod, lambda m, func: _Rewrite(m, func, self.plan))
        return relax.transform.DeadCodeElimination()(mod)
