"""XNOR layers in an imported Relax function, and how their binary values flow between them.

pattern   act(binarize(x) (*) W + b)       binarize(x) = where(greater_equal(x, tau), 1, -1), the
                                            ONNX form of binary activations (binary_act.py); W
                                            holds {-a[c], +a[c]} (layer_check.binary_scales)
outputs   bits       every reader of the layer's output is, through max pools, the binarization of
                     another XNOR layer's input, all with one tau: the kernel writes the packed
                     compare (OutBinary), the pools run on bits, the float chain is dead
          codes      its one reader is a quantize: the kernel writes the 8-bit codes (OutQuant)
          float      anything else: the kernel writes the float output, TVM runs the rest
inputs    bits of the XNOR layer that wrote them (above), else the codes of a dequantize, binarized
          by an integer compare (binary_pack.code_thresholds), else a float tensor, compared as is

One analysis, run by the planner (to decide and build the kernels) and by the rewrite (to find
the same expressions in the function it rewrites), so the two cannot disagree.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from tvm import relax
from tvm.relax.dpl import is_const, is_op, wildcard

from ..layer import BINARY, OutBinary, OutQuant, QuantLayer
from ..layer_names import layer_name
from ..primitives.binary_pack import Pool
from .layer_check import _activation, _bias, _scalar, binary_scales
from .patterns import activation as act_pattern
from .patterns import LayerParts, _bias_add, _weight, const_value

POOL = "relax.nn.max_pool2d"


@dataclass
class XnorPattern(LayerParts):
    """The XNOR rule's pattern: the layer parts, and the binarization of its input (x >= tau)."""

    x: object = None
    tau: object = None
    binarize: object = None


def xnor_pattern(op: str) -> XnorPattern:
    x, tau = wildcard(), is_const()
    binarize = is_op("relax.where")(is_op("relax.greater_equal")(x, tau), is_const(), is_const())
    weight, _ = _weight()
    permute = is_op("relax.permute_dims")(weight)
    core = is_op("relax.nn.conv2d")(binarize, weight) if op == "conv2d" else is_op("relax.matmul")(binarize, permute | weight)
    y, bias = _bias_add(core)
    act, relu, lo, hi = act_pattern(y)
    return XnorPattern(op, act, weight, permute, core, bias, relu, lo, hi, x=x, tau=tau, binarize=binarize)


@dataclass
class XnorSite:
    """One XNOR layer of the function: its QuantLayer (output not yet decided), the expressions
    the rewrite reads and replaces, and where its input and output go."""

    name: str
    layer: QuantLayer
    in_shape: tuple  # the +-1 input, NCHW or [N, K]
    binarize: relax.Expr  # the where() the layer reads
    x: relax.Expr  # what that where() thresholds
    tau: np.ndarray  # ... against this, per input channel
    root: relax.Var  # bound to the layer's last float value (activation, bias add or the op)
    out: relax.Var | None = None  # what the kernel replaces: root, or the quantize reading it
    feeds: list = field(default_factory=list)  # bits mode: (binarize var of a reader, pools)


def _tau(m, p, var2val, channels: int) -> np.ndarray | None:
    tau = const_value(m[p.tau], var2val)
    ones = [const_value(a, var2val) for a in m[p.binarize].args[1:]]
    if tau is None or any(o is None or o.size != 1 for o in ones) or (float(ones[0]), float(ones[1])) != (1.0, -1.0):
        return None
    tau = np.asarray(tau, np.float32)
    if tau.size == 1:
        return np.full(channels, float(tau.reshape(())), np.float32)
    if tau.size == channels:  # [1, C, 1, 1] or [C]
        return tau.reshape(-1)
    return None


def _layer(p: XnorPattern, m, var2val, name: str) -> QuantLayer | None:
    if isinstance(m[p.weight], relax.Call):  # a dequantized int8 weight: not the binary form
        return None
    w = const_value(m[p.weight], var2val)
    if p.op == "dense" and p.permute not in m:
        w = w.T
    found = binary_scales(w)
    if found is None:
        return None
    signs, a = found
    layer = QuantLayer(name=name, op=p.op, weight_kind="binary", codes=signs.astype(np.int8), w_scale=a, in_scale=1.0,
                       in_zero_point=0, in_dtype=BINARY, bias=_bias(p, m, var2val, w.shape[0]))
    if p.op == "conv2d":
        attrs = m[p.core].attrs
        if int(attrs.groups) != 1 or any(int(d) != 1 for d in attrs.dilation) or attrs.data_layout != "NCHW":
            return None
        layer.strides = tuple(int(s) for s in attrs.strides)
        layer.padding = tuple(int(s) for s in attrs.padding)
    return layer if _activation(p, m, var2val, layer) else None


def consumers(func: relax.Function) -> dict:
    """Var -> the vars bound to the calls that read it."""
    readers: dict = {}
    for block in func.body.blocks:
        for b in block.bindings:
            args = list(getattr(b.value, "args", []))
            for a in [f for a in args for f in (a.fields if isinstance(a, relax.Tuple) else [a])]:
                if isinstance(a, relax.Var):
                    readers.setdefault(a, []).append(b.var)
    return readers


def find_sites(func: relax.Function) -> list[XnorSite]:
    """Every XNOR layer of `func` (outermost match per layer), in graph order."""
    var2val = relax.analysis.get_var2val(func)
    bound = {b.value: b.var for block in func.body.blocks for b in block.bindings}
    sites: dict = {}
    for op in ("conv2d", "dense"):
        p = xnor_pattern(op)
        for value, var in bound.items():
            m = p.root.extract_matched_expr(value, var2val)
            name = layer_name(m[p.weight]) if m is not None and p.weight in m else None
            if name is None:
                continue
            in_shape = tuple(int(s) for s in m[p.binarize].ty.shape)
            tau = _tau(m, p, var2val, in_shape[1])
            layer = _layer(p, m, var2val, name) if tau is not None else None
            if layer is not None:  # a later (outer) match of the same layer replaces an inner one
                sites[name] = XnorSite(name, layer, in_shape, m[p.binarize], m[p.x], tau, var, var)
    order = {var: i for i, var in enumerate(bound.values())}
    return sorted(sites.values(), key=lambda s: order[s.root])


def decide_outputs(func: relax.Function, sites: list[XnorSite]) -> None:
    """Set each site's layer.out (bits, codes or float) and `out`, `feeds` (module docstring)."""
    var2val = relax.analysis.get_var2val(func)
    readers = consumers(func)
    binarize_of = {}
    for s in sites:
        for var, value in var2val.items():
            if value.same_as(s.binarize):
                binarize_of[var] = s

    def bit_readers(var, pools):  # [(binarize var, pools, tau)] or None
        found = []
        for r in readers.get(var, []):
            value = var2val[r]
            name = getattr(getattr(value, "op", None), "name", "")
            if name == POOL and (pool := _pool(value)) is not None:
                more = bit_readers(r, pools + [pool])
            elif name == "relax.greater_equal" and (tau := const_value(value.args[1], var2val)) is not None:
                wheres = readers.get(r, [])
                ours = wheres and all(w in binarize_of for w in wheres)
                more = [(w, pools, np.asarray(tau, np.float32)) for w in wheres] if ours else None
            else:
                more = None
            if more is None:
                return None
            found += more
        return found or None

    for s in sites:
        co = s.layer.out_channels
        found = bit_readers(s.root, [])
        taus = [np.broadcast_to(t.reshape(-1), (co,)) for _, _, t in found or []]
        if found and all(np.array_equal(t, taus[0]) for t in taus):
            s.layer.out, s.feeds = OutBinary(np.asarray(taus[0], np.float32)), [(w, pools) for w, pools, _ in found]
            continue
        rs = readers.get(s.root, [])
        q = var2val[rs[0]] if len(rs) == 1 else None
        if getattr(getattr(q, "op", None), "name", "") == "relax.quantize" and str(q.attrs.out_dtype) in ("uint8", "int8"):
            try:
                s.layer.out = OutQuant(_scalar(q.args[1], var2val), int(_scalar(q.args[2], var2val)), str(q.attrs.out_dtype))
                s.out = rs[0]
            except ValueError:  # a per-channel output quantize: float output, TVM quantizes
                pass


def _pool(call) -> Pool | None:
    a = call.attrs
    if a.layout != "NCHW" or any(int(d) != 1 for d in a.dilation) or bool(a.ceil_mode):
        return None
    return Pool(tuple(int(s) for s in a.pool_size), tuple(int(s) for s in a.strides), tuple(int(s) for s in a.padding))
