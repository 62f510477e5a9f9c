"""Rewrite rule: a quantized conv2d/dense layer becomes one call to an integer primitive.

pattern     quantize(act(dequantize(q_x) (*) W + b))   act in {none, relu, clip}; W ternary or int8
check       8-bit input, groups 1, no dilation, NCHW/OIHW, W ternary-valued or dequantized int8
replacement q_y = primitive(q_x, packed W, requantization constants)     (emit_te, one PrimFunc)

The float-output variant (no output quantize, e.g. the logits) ends in a float epilogue.
Anything that fails the check is left to TVM's own lowering; the layer's record in the plan
(layer_plan, keyed by the ONNX node name its weight constant carries) says why.
"""
from __future__ import annotations

import numpy as np
from tvm import relax
from tvm.relax.expr_functor import PyExprMutator, mutator

from .. import primitives
from ..errors import InputError
from ..layer import OutQuant, QuantLayer
from ..layer_names import layer_name
from ..layer_plan import Lowered
from ..ternary import detect_ternary
from .patterns import LayerPattern, call_tir_name, const_value

# FuseOps must not merge neighbours into our kernels: the hand-written schedule expects its own
# blocks only (kOpaque in TVM's OpPatternKind).
OPAQUE = 8


def ternary_scales(w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(signs, wp[Co], wn[Co]) if w holds {-Wn, 0, +Wp} per layer or per output channel (the
    quantizer's own test, ternary.detect_ternary) and has zeros: a dense two-valued weight is
    not a ternary layer."""
    found = detect_ternary(np.asarray(w, np.float32))
    if found is None or not (found.signs == 0).any():
        return None
    return found.signs, found.wp.astype(np.float32), found.wn.astype(np.float32)


def _scalar(expr, var2val) -> float:
    value = const_value(expr, var2val)
    if value is None or np.asarray(value).size != 1:
        raise ValueError("not a scalar constant")
    return float(np.asarray(value).reshape(()))


@mutator
class LowerQuantLayers(PyExprMutator):
    """Apply the rewrite rule to every matching layer of one Relax function."""

    def __init__(self, mod, func, pattern: LayerPattern, options):
        super().__init__(mod)
        self.pat = pattern
        self.var2val = relax.analysis.get_var2val(func)
        self.opts = options  # LayerOptions: formats, the plan
        self._done = {}  # the mutator may visit a binding twice: lower each layer once

    # -- pattern ---------------------------------------------------------------------------
    def visit_call_(self, call):
        key = hash(call)
        if key in self._done:
            return self._done[key]
        m = self.pat.root.extract_matched_expr(call, self.var2val)
        if m is not None:
            layer = self._check(m, call)
            if layer is not None:
                self._done[key] = self._replace(layer, m)
                return self._done[key]
        return super().visit_call_(call)

    # -- check -----------------------------------------------------------------------------
    def _check(self, m, call) -> QuantLayer | None:
        p, v2v = self.pat, self.var2val
        core = m[p.core]
        dq_in = m[p.dq_in]
        in_dtype = str(m[p.q_in].ty.dtype)
        w_expr = m[p.weight]
        is_int8 = p.weight_dq in m
        w_const = w_expr.args[0] if is_int8 else w_expr
        name = layer_name(w_const)
        if name not in self.opts.plan:
            return None  # not a weight-bearing ONNX layer (a constant TVM's import made)
        w = const_value(w_const, v2v)
        forced = self.opts.formats.get(name)
        why = self._unsupported(core, in_dtype, w)
        if why:
            self._skip(name, why, forced)
            return None
        if p.op == "dense" and p.permute not in m:
            w = w.T  # MatMul with W[K, Co]; Gemm transB=1 already holds W[Co, K]
        in_scale, in_zp = _scalar(dq_in.args[1], v2v), int(_scalar(dq_in.args[2], v2v))
        kw = dict(name=name, op=p.op, in_scale=in_scale, in_zero_point=in_zp, in_dtype=in_dtype)
        if is_int8:
            w_scale = np.broadcast_to(const_value(w_expr.args[1], v2v), (w.shape[0],)).astype(np.float32)
            w_zp = const_value(w_expr.args[2], v2v)
            if np.any(w_zp != 0) or str(w.dtype) != "int8":
                self._skip(name, "int8 weight with a non-zero zero point", forced)
                return None
            layer = QuantLayer(weight_kind="int8", signs=w, w_scale=w_scale, **kw, bias=None)
        else:
            tern = ternary_scales(w)
            if tern is None:
                self._skip(name, "float weight is not ternary-valued", forced)
                return None
            signs, wp, wn = tern
            layer = QuantLayer(weight_kind="ternary", signs=signs, wp=wp, wn=wn, **kw, bias=None)
        layer.bias = self._bias(m, w.shape[0])
        if p.op == "conv2d":
            layer.strides = tuple(int(s) for s in core.attrs.strides)
            layer.padding = tuple(int(s) for s in core.attrs.padding)
        if p.q_out is not None:
            if not self._activation(m, layer):
                self._skip(name, "activation between layer and quantize is not ReLU/Clip", forced)
                return None
            q = m[p.q_out]
            layer.out = OutQuant(_scalar(q.args[1], v2v), int(_scalar(q.args[2], v2v)), str(q.attrs.out_dtype))
        return layer

    def _unsupported(self, core, in_dtype, w) -> str | None:
        if in_dtype not in ("uint8", "int8"):
            return f"input is {in_dtype}, not 8-bit"
        if w is None:
            return "weight is not a constant"
        if self.pat.op == "conv2d":
            a = core.attrs
            if int(a.groups) != 1:
                return f"groups={int(a.groups)}"
            if any(int(d) != 1 for d in a.dilation):
                return "dilated convolution"
            if a.data_layout != "NCHW" or a.kernel_layout != "OIHW":
                return f"layout {a.data_layout}/{a.kernel_layout}"
        elif len(core.args[0].ty.shape) != 2:
            return "matmul input is not 2-D"
        return None

    def _bias(self, m, co: int) -> np.ndarray:
        if self.pat.bias not in m:
            return np.zeros(co, np.float32)
        b = const_value(m[self.pat.bias], self.var2val)
        return np.broadcast_to(np.asarray(b, np.float32).reshape(-1), (co,)).copy()

    def _activation(self, m, layer: QuantLayer) -> bool:
        p = self.pat
        if p.relu in m:
            layer.act_lo = 0.0
        for key, fn, attr in ((p.clip_lo, "maximum", "act_lo"), (p.clip_hi, "minimum", "act_hi")):
            if key in m:
                call = m[key]
                if not call_tir_name(call).startswith(fn):
                    return False
                setattr(layer, attr, _scalar(call.args[1].fields[1], self.var2val))
        return True

    def _skip(self, name, why, forced):
        if forced and forced != "float":
            self.opts.failure = InputError(f"layer {name!r}: cannot use format {forced!r}: {why}")
            raise self.opts.failure
        self.opts.plan.keep_float(name, why)

    # -- replacement -----------------------------------------------------------------------
    def _replace(self, layer: QuantLayer, m):
        fmt = self.opts.choose_format(layer)
        if fmt == "float":
            self._skip(layer.name, "float requested", None)
            return super().visit_call_(m[self.pat.root])
        q_x = self.visit_expr(m[self.pat.q_in])
        in_shape = tuple(int(s) for s in q_x.ty.shape)
        try:
            lowered = primitives.lower_layer(layer, in_shape, fmt, self.opts.int8_operand)
        except InputError as err:
            self.opts.failure = err
            raise
        consts = [relax.const(c, str(c.dtype)) for c in lowered.consts]  # relax.const narrows int64 otherwise
        out = self.builder_.emit_te(
            lowered.te_func,
            q_x,
            *consts,
            primfunc_name_hint=f"deepchip_{lowered.primitive}",
            primfunc_attrs={"op_pattern": OPAQUE},
        )
        self.opts.plan.lower(layer.name, Lowered(layer, fmt, in_shape, lowered.primitive, tuple(lowered.out_shape),
                                                 int(lowered.weight_bytes)))
        return out

