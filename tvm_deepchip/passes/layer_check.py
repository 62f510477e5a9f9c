"""The check of the layer-lowering rule: a matched quantized conv2d/dense read into a QuantLayer,
or the reason it stays float.

check   8-bit input, groups 1, no dilation, NCHW/OIHW, W ternary-valued, binary-valued
        ({-a[c], +a[c]}: BinaryConnect/BWN, lowered as int8 codes +-1 with scale a[c], exact) or
        dequantized int8 (zero point 0), ReLU/Clip (or nothing) between the layer and its output
        quantize

The planner runs it on every match (planner.py); the rewrite only applies what it decided.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..layer import OutQuant, QuantLayer
from ..layer_names import layer_name
from ..ternary import detect_ternary
from .patterns import LayerPattern, call_tir_name, const_value


def ternary_scales(w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(signs, wp[Co], wn[Co]) if w holds {-Wn, 0, +Wp} per layer or per output channel (the
    quantizer's own test, ternary.detect_ternary) and has zeros: a dense two-valued weight is
    not a ternary layer."""
    found = detect_ternary(np.asarray(w, np.float32))
    if found is None or not (found.signs == 0).any():
        return None
    return found.signs, found.wp.astype(np.float32), found.wn.astype(np.float32)


def binary_scales(w: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(signs, a[Co]) if w holds exactly {-a[c], +a[c]} per output channel (BinaryConnect/BWN,
    the quantizer's --scheme bwn): no zeros, the same magnitude on both signs of every channel."""
    found = detect_ternary(np.asarray(w, np.float32))
    if found is None or (found.signs == 0).any() or not np.array_equal(found.wp, found.wn):
        return None
    return found.signs, found.wp.astype(np.float32)


BINARY_NOTE = "binary weights {-a, +a}: int8 kernels on codes +-1"


def weight_name(p: LayerPattern, m) -> str | None:
    """The ONNX node name the matched layer's weight constant carries (layer_names)."""
    w_expr = m[p.weight]
    return layer_name(w_expr.args[0] if p.weight_dq in m else w_expr)


def input_shape(p: LayerPattern, m) -> tuple:
    return tuple(int(s) for s in m[p.q_in].ty.shape)


@dataclass(frozen=True)
class Checked:
    """A matched layer: the QuantLayer it lowers to, or why it cannot (exactly one is set)."""

    layer: QuantLayer | None = None
    why: str | None = None


def _scalar(expr, var2val) -> float:
    value = const_value(expr, var2val)
    if value is None or np.asarray(value).size != 1:
        raise ValueError("not a scalar constant")
    return float(np.asarray(value).reshape(()))


def check_layer(p: LayerPattern, m, var2val, name: str) -> Checked:
    """Read the match `m` of pattern `p` (layer `name`) into a QuantLayer, or say why not."""
    core, dq_in = m[p.core], m[p.dq_in]
    in_dtype = str(m[p.q_in].ty.dtype)
    w_expr = m[p.weight]
    is_int8 = p.weight_dq in m
    w = const_value(w_expr.args[0] if is_int8 else w_expr, var2val)
    why = _unsupported(p, core, in_dtype, w)
    if why:
        return Checked(why=why)
    if p.op == "dense" and p.permute not in m:
        w = w.T  # MatMul with W[K, Co]; Gemm transB=1 already holds W[Co, K]
    in_scale, in_zp = _scalar(dq_in.args[1], var2val), int(_scalar(dq_in.args[2], var2val))
    kw = dict(name=name, op=p.op, in_scale=in_scale, in_zero_point=in_zp, in_dtype=in_dtype)
    if is_int8:
        w_scale = np.broadcast_to(const_value(w_expr.args[1], var2val), (w.shape[0],)).astype(np.float32)
        w_zp = const_value(w_expr.args[2], var2val)
        if np.any(w_zp != 0) or str(w.dtype) != "int8":
            return Checked(why="int8 weight with a non-zero zero point")
        layer = QuantLayer(weight_kind="int8", codes=w, w_scale=w_scale, **kw, bias=None)
    else:
        tern = ternary_scales(w)
        binary = binary_scales(w) if tern is None else None  # (a ternary weight is not read twice)
        if tern is not None:
            signs, wp, wn = tern
            layer = QuantLayer(weight_kind="ternary", codes=signs, wp=wp, wn=wn, **kw, bias=None)
        elif binary is not None:  # y = a[c] * sum(+-x): the int8 dot products compute it exactly
            signs, a = binary
            layer = QuantLayer(weight_kind="int8", codes=signs, w_scale=a, **kw, bias=None, meta={"note": BINARY_NOTE})
        else:
            return Checked(why="float weight is neither ternary- nor binary-valued")
    layer.bias = _bias(p, m, var2val, w.shape[0])
    if p.op == "conv2d":
        layer.strides = tuple(int(s) for s in core.attrs.strides)
        layer.padding = tuple(int(s) for s in core.attrs.padding)
    if p.q_out is not None:
        if not _activation(p, m, var2val, layer):
            return Checked(why="activation between layer and quantize is not ReLU/Clip")
        q = m[p.q_out]
        layer.out = OutQuant(_scalar(q.args[1], var2val), int(_scalar(q.args[2], var2val)), str(q.attrs.out_dtype))
    return Checked(layer=layer)


def _unsupported(p: LayerPattern, core, in_dtype, w) -> str | None:
    if in_dtype not in ("uint8", "int8"):
        return f"input is {in_dtype}, not 8-bit"
    if w is None:
        return "weight is not a constant"
    if p.op == "conv2d":
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


def _bias(p: LayerPattern, m, var2val, co: int) -> np.ndarray:
    if p.bias not in m:
        return np.zeros(co, np.float32)
    b = const_value(m[p.bias], var2val)
    return np.broadcast_to(np.asarray(b, np.float32).reshape(-1), (co,)).copy()


def activation_bounds(p, m, var2val) -> tuple[float, float] | None:
    """(lo, hi) of the ReLU/Clip in the match `m` of a pattern with relu/clip_lo/clip_hi parts
    (patterns.activation; -inf, inf where there is none); None if the call is not ReLU/Clip."""
    bounds = [-np.inf, np.inf]
    if p.relu in m:
        bounds[0] = 0.0
    for key, fn, i in ((p.clip_lo, "maximum", 0), (p.clip_hi, "minimum", 1)):
        if key in m:
            call = m[key]
            if not call_tir_name(call).startswith(fn):
                return None
            bounds[i] = _scalar(call.args[1].fields[1], var2val)
    return bounds[0], bounds[1]


def _activation(p: LayerPattern, m, var2val, layer: QuantLayer) -> bool:
    bounds = activation_bounds(p, m, var2val)
    if bounds is not None:
        layer.act_lo, layer.act_hi = bounds
    return bounds is not None
