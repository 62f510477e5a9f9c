"""The integer primitives: one module per primitive (TE compute + numpy reference + packing).

`lower_layer` is the one entry the graph pass uses: a QuantLayer and a storage format in, the
packed constants and a TE function out, with `reference`: the numpy reference of the same
primitive on the same packed constants (tests compare the two bit for bit).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from ..errors import InputError
from ..layer import QuantLayer
from . import (
    int8_conv2d,
    int8_dense,
    requantize,
    ternary_conv2d_packed,
    ternary_conv2d_sparse,
    ternary_dense_packed,
    ternary_dense_sparse,
)
from .conv_layout import ConvGeometry, code_shift
from .dense_layout import check_shapes

MODULES = (ternary_conv2d_sparse, ternary_conv2d_packed, int8_conv2d, ternary_dense_sparse, ternary_dense_packed, int8_dense)
STEMS = tuple(m.STEM for m in MODULES)


@dataclass
class LoweredLayer:
    consts: list  # numpy arrays, passed after the input
    te_func: Callable  # te_func(x, *consts) -> te.Tensor
    reference: Callable  # reference(qx) -> np.ndarray, same arithmetic as te_func
    out_shape: tuple
    out_dtype: str
    primitive: str  # module stem
    weight_bytes: int  # weight storage the kernel reads at run time
    epilogue_bytes: int


def formats_for(layer: QuantLayer) -> tuple[str, ...]:
    """Formats that can run this layer exactly."""
    if layer.weight_kind == "int8":
        return ("int8",)
    symmetric = np.allclose(layer.wp, layer.wn, rtol=0, atol=0)
    return ("sparse", "packed") + (("int8",) if symmetric else ())


def _as_int8(layer: QuantLayer) -> QuantLayer:
    """A ternary layer with Wp == Wn is an int8 layer with weights in {-1, 0, 1}."""
    if layer.weight_kind == "int8":
        return layer
    if "int8" not in formats_for(layer):
        raise InputError(f"layer {layer.name!r}: format 'int8' needs Wp == Wn (got asymmetric ternary weights)")
    co = layer.out_channels
    scale = np.broadcast_to(np.asarray(layer.wp, np.float32), (co,)).copy()
    return replace(layer, weight_kind="int8", signs=layer.signs.astype(np.int8), w_scale=scale, wp=None, wn=None)


def lower_layer(layer: QuantLayer, in_shape: tuple, fmt: str, int8_operand: str = "uint8") -> LoweredLayer:
    """Pack the weights of `layer` for `fmt` ("sparse" | "packed" | "int8") and build its kernel.
    `int8_operand`: the type the int8 conv's dot products take their input codes in (the target's
    instruction: uint8 for x86 VNNI, int8 for ARM sdot)."""
    if fmt not in ("sparse", "packed", "int8"):
        raise InputError(f"layer {layer.name!r}: no primitive for format {fmt!r}")
    if fmt == "int8":
        layer = _as_int8(layer)
    elif layer.weight_kind != "ternary":
        raise InputError(f"layer {layer.name!r}: format {fmt!r} needs ternary weights, the layer has {layer.weight_kind}")
    epi = requantize.fit(layer)
    ec = epi.consts()
    zp = int(layer.in_zero_point)
    signs = layer.signs
    counts = max(int((signs.reshape(len(signs), -1) == v).sum(1).max()) for v in (1, -1))
    if layer.op == "conv2d":
        geo = ConvGeometry.of(in_shape, signs.shape, layer.strides, layer.padding, layer.name)
        out_shape = geo.out_shape()
        if fmt == "sparse":
            mod, w = ternary_conv2d_sparse, list(ternary_conv2d_sparse.pack(signs, geo))
            te_func = lambda x, rp, mp, rn, mn, *c: mod.compute(x, rp, mp, rn, mn, c, geo, epi, zp)  # noqa: E731
            ref = lambda qx: mod.reference(qx, *w, geo, epi, zp)  # noqa: E731
        elif fmt == "packed":
            mod, w = ternary_conv2d_packed, [ternary_conv2d_packed.pack(signs, geo)]
            te_func = lambda x, pl, *c: mod.compute(x, pl, c, geo, epi, zp, counts)  # noqa: E731
            ref = lambda qx: mod.reference(qx, w[0], geo, epi, zp)  # noqa: E731
        else:
            op = int8_operand
            mod, w = int8_conv2d, [int8_conv2d.pack(signs, geo, op)]
            mod.check_bound(layer.in_dtype if op == int8_conv2d.WIDE_OPERAND else op, signs, layer.name)
            if code_shift(layer.in_dtype, op):  # codes shifted by 128 into the operand type
                epi = mod.shifted_epilogue(layer, op)
                ec = epi.consts()
            te_func = lambda x, wt, *c: mod.compute(x, wt, c, geo, epi, zp, op)  # noqa: E731
            ref = lambda qx: mod.reference(qx, w[0], geo, epi, zp, op)  # noqa: E731
    elif layer.op == "dense":
        n, _, co = check_shapes(in_shape, signs.shape, layer.name)
        out_shape = (n, co)
        if fmt == "sparse":
            mod, w = ternary_dense_sparse, list(ternary_dense_sparse.pack(signs))
            te_func = lambda x, rp, mp, rn, mn, *c: mod.compute(x, rp, mp, rn, mn, c, epi)  # noqa: E731
            ref = lambda qx: mod.reference(qx, *w, epi)  # noqa: E731
        elif fmt == "packed":
            mod, w = ternary_dense_packed, [ternary_dense_packed.pack(signs)]
            te_func = lambda x, pl, *c: mod.compute(x, pl, c, epi, counts)  # noqa: E731
            ref = lambda qx: mod.reference(qx, w[0], epi)  # noqa: E731
        else:
            int8_conv2d.check_bound(layer.in_dtype, signs, layer.name)
            mod, w = int8_dense, [signs.astype(np.int8)]
            te_func = lambda x, wt, *c: mod.compute(x, wt, c, epi)  # noqa: E731
            ref = lambda qx: mod.reference(qx, w[0], epi)  # noqa: E731
    else:
        raise InputError(f"layer {layer.name!r}: unknown op {layer.op!r}")
    return LoweredLayer(
        consts=w + ec,
        te_func=te_func,
        reference=ref,
        out_shape=tuple(int(s) for s in out_shape),
        out_dtype=epi.out_dtype,
        primitive=mod.STEM,
        weight_bytes=mod.weight_bytes(*w),
        epilogue_bytes=int(sum(c.nbytes for c in ec)),
    )
