"""The integer primitives and their registry: one module per primitive (TE compute + numpy
reference + packing), each declaring one `Primitive` record (record.py) listed in PRIMITIVES.

`lower_layer` is the one entry the graph pass uses: a QuantLayer and a storage format in, the
packed constants and a TE function out, with `reference`: the numpy reference of the same
primitive on the same packed constants (tests compare the two bit for bit). `prim_func` turns
the result into its PrimFunc (for the format chooser, the tuner's tests and the primitive tests).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from .. import isa
from ..errors import InputError
from ..formats import Format
from ..isa import IsaClass
from ..layer import QuantLayer
from . import (
    bwn_conv2d,
    bwn_dense,
    bwn_weights,
    conv_layout,
    int8_add,
    int8_conv2d,
    int8_dense,
    requantize_pairs,
    ternary_conv2d_delta,
    ternary_conv2d_dot,
    ternary_conv2d_packed,
    ternary_conv2d_sparse,
    ternary_dense_delta,
    ternary_dense_dot,
    ternary_dense_packed,
    ternary_dense_sparse,
    xnor_conv2d,
    xnor_dense,
)
from .int8_weights import dot_operand
from .record import Primitive, Site
from .sparse_rows import valid_dummy

# The registry: adding a primitive adds its module's record here.
PRIMITIVES: tuple[Primitive, ...] = (
    ternary_conv2d_sparse.PRIMITIVE,
    ternary_conv2d_delta.PRIMITIVE,
    ternary_conv2d_packed.PRIMITIVE,
    ternary_conv2d_dot.PRIMITIVE,
    int8_conv2d.PRIMITIVE,
    ternary_dense_sparse.PRIMITIVE,
    ternary_dense_delta.PRIMITIVE,
    ternary_dense_packed.PRIMITIVE,
    ternary_dense_dot.PRIMITIVE,
    int8_dense.PRIMITIVE,
    xnor_conv2d.PRIMITIVE,
    xnor_dense.PRIMITIVE,
    bwn_conv2d.PRIMITIVE,
    bwn_dense.PRIMITIVE,
)
_BY_KEY = {(p.op, p.format): p for p in PRIMITIVES}
# lower_layer's class when none is named: uint8 dot-product operands, 8-bit sparse taps, 512-bit vectors
DEFAULT_CLASS = "x86-avx512-vnni"
assert len(_BY_KEY) == len(PRIMITIVES), "two primitives registered under one (op, format)"

__all__ = ["PRIMITIVES", "LoweredLayer", "Primitive", "formats_for", "lookup", "lower_layer", "prim_func", "valid_dummy"]


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
    in_shape: tuple = ()  # the input codes te_func takes
    in_dtype: str = "uint8"
    layer_out_shape: tuple = ()  # the layer's output, NCHW or [N, Co] (an XNOR kernel writes it bit-packed)
    te_add: Callable | None = None  # te_add(x, other, add_consts, *consts): the output plus `other` (int8_add)
    dot_operand: str | None = None  # the type its dot products read input codes in (int8 dot forms only)
    pair_sums: bool = False  # its dot products sum product pairs in int16 (primitives/pair_sums)
    # te_pooled(x, pool, *consts): te_func over x, the input of max pool `pool` (int8_max_pool.Pool)
    # that gives the layer its input; None where the kernel cannot read it
    te_pooled: Callable | None = None
    # te_quantized(x, quant, *consts): te_func over float x, whose codes are InputQuantize `quant`'s
    # (primitives/input_quantize); None where the kernel cannot read floats
    te_quantized: Callable | None = None
    # te_binarized(x, thr, *consts): te_func over x [N, C, H, W] whose binarization against thr
    # (binary_pack.te_pack's) is the bit-packed input it takes; None where the kernel cannot pack it
    te_binarized: Callable | None = None


def formats_for(layer: QuantLayer, in_shape: tuple | None = None) -> tuple[Format, ...]:
    """Formats that can run this layer exactly (on input `in_shape`: a conv runs the dot form only
    where its kernel covers its whole input, ternary_conv2d_dot)."""
    if layer.weight_kind == "int8":
        bits = layer.op == "dense" or (in_shape is not None and bwn_conv2d.covers(conv_layout.geometry(layer, in_shape)))
        return (Format.INT8,) + ((Format.BITS,) if bits and bwn_weights.binary_valued(layer) else ())
    if layer.weight_kind == "binary":
        return (Format.XNOR,)
    symmetric = np.allclose(layer.wp, layer.wn, rtol=0, atol=0)
    dot = (Format.DOT,) if layer.op == "dense" or (in_shape is not None and _covers(layer, in_shape)) else ()
    return (Format.SPARSE, Format.DELTA, Format.PACKED) + dot + ((Format.INT8,) if symmetric else ())


def _covers(layer: QuantLayer, in_shape: tuple) -> bool:
    return int8_conv2d.covers_input(conv_layout.geometry(layer, in_shape))


def lookup(op: str, fmt) -> Primitive:
    """The primitive computing `op` over weights in format `fmt` (KeyError if none)."""
    return _BY_KEY[(op, Format(fmt))]


def _as_kind(layer: QuantLayer, kind: str, fmt: Format) -> QuantLayer:
    """The layer with the weight kind the primitive packs: a ternary layer with Wp == Wn is an
    int8 layer with weights in {-1, 0, 1}; int8 weights have no ternary form."""
    if layer.weight_kind == kind:
        return layer
    if kind != "int8":
        raise InputError(f"layer {layer.name!r}: format {fmt.value!r} needs {kind} weights, the layer has {layer.weight_kind}")
    if fmt not in formats_for(layer):
        raise InputError(f"layer {layer.name!r}: format 'int8' needs Wp == Wn (got asymmetric ternary weights)")
    co = layer.out_channels
    scale = np.broadcast_to(np.asarray(layer.wp, np.float32), (co,)).copy()
    return replace(layer, weight_kind="int8", codes=layer.codes.astype(np.int8), w_scale=scale, wp=None, wn=None)


def lower_layer(layer: QuantLayer, in_shape: tuple, fmt: str, isa_class: IsaClass | None = None) -> LoweredLayer:
    """Pack the weights of `layer` for `fmt` (formats.KERNEL_FORMATS) and build its kernel for the
    target's ISA class (default: DEFAULT_CLASS). What the primitives read of it: the type the int8
    dot products take their input codes in (uint8 for x86 VNNI, int8 for ARM sdot, int16 pairs
    without either, or uint8 there too for weights of 7 bits: int8_weights.dot_operand), the wider
    type the sparse convs store input codes in (AVX2), and the vector width of the hand-written
    loop nests (the delta kernels)."""
    if fmt not in {p.format for p in PRIMITIVES}:
        raise InputError(f"layer {layer.name!r}: no primitive for format {fmt!r}")
    if layer.op not in {p.op for p in PRIMITIVES}:
        raise InputError(f"layer {layer.name!r}: unknown op {layer.op!r}")
    if (layer.op, Format(fmt)) not in _BY_KEY:
        raise InputError(f"layer {layer.name!r}: format {fmt!r} has no {layer.op} kernel "
                         f"(it has: {', '.join(p.op for p in PRIMITIVES if p.format == fmt)})")
    prim = lookup(layer.op, fmt)
    cls = isa_class or isa.get(DEFAULT_CLASS)
    layer = _as_kind(layer, prim.weight_kind, prim.format)
    geo = prim.geometry(layer, in_shape)
    operand = dot_operand(cls, layer.codes)
    weights = prim.pack(layer, geo, operand, cls) if prim.pack_by_class else prim.pack(layer, geo, operand)
    epi = prim.epilogue(layer, operand)
    if prim.int16_pairs and requantize_pairs.for_class(cls) and prim.int16_pairs(geo, weights, layer.in_dtype):
        epi = epi.in_pairs()
    site = Site(geo, epi, int(layer.in_zero_point), cls)
    ec = site.epi.consts()
    n = len(weights.arrays())
    io = prim.packed_io(geo, site.epi) if prim.packed_io else (in_shape, layer.in_dtype, geo.out_shape())

    def te_add(x, other, add, *c):
        if prim.compute_add is not None:
            return prim.compute_add(x, weights.with_arrays(c[:n]), c[n:], site, other, add)
        return int8_add.compute(prim.compute(x, weights.with_arrays(c[:n]), c[n:], site), other, add)

    return LoweredLayer(
        consts=weights.arrays() + ec,
        te_func=lambda x, *c: prim.compute(x, weights.with_arrays(c[:n]), c[n:], site),
        reference=lambda qx: prim.reference(qx, weights, site),
        out_shape=tuple(int(s) for s in io[2]),
        out_dtype=site.epi.out_dtype,
        primitive=prim.stem,
        weight_bytes=weights.nbytes(),
        epilogue_bytes=int(sum(c.nbytes for c in ec)),
        in_shape=tuple(int(s) for s in io[0]),
        in_dtype=io[1],
        layer_out_shape=tuple(int(s) for s in geo.out_shape()),
        te_add=te_add,
        dot_operand=getattr(weights, "operand", None),  # the dot-product forms (Int8Weights, bit_dot.BitWords)
        pair_sums=bool(prim.pair_sums and prim.pair_sums(site, weights)),
        te_pooled=(lambda x, pool, *c: prim.compute_pooled(x, weights.with_arrays(c[:n]), c[n:], site, pool))
        if prim.takes_pool and prim.takes_pool(site, weights, layer.in_dtype) else None,
        te_quantized=(lambda x, quant, *c: prim.compute_quantized(x, weights.with_arrays(c[:n]), c[n:], site, quant))
        if prim.takes_quantize and prim.takes_quantize(site, weights, layer.in_dtype) else None,
        te_binarized=(lambda x, thr, *c: prim.compute_binarized(x, weights.with_arrays(c[:n]), c[n:], site, thr))
        if prim.takes_binarized and prim.takes_binarized(site, weights, layer.in_dtype) else None,
    )


def prim_func(lowered: LoweredLayer):
    """The PrimFunc main(x, *consts, out) of a lowered layer, unscheduled (te.create_prim_func)."""
    from tvm import te

    x = te.placeholder(lowered.in_shape, lowered.in_dtype, name="x")
    consts = [te.placeholder(c.shape, str(c.dtype), name=f"c{i}") for i, c in enumerate(lowered.consts)]
    return te.create_prim_func([x, *consts, lowered.te_func(x, *consts)])
