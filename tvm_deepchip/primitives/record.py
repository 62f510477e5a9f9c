"""What a primitive declares: one `Primitive` record per primitive module (its `PRIMITIVE`), and
the base of the named structure its packing returns.

The registry (primitives/__init__.py) indexes the records by (op, format); lowering a layer
looks its record up and calls the same five functions for every primitive.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Callable

from ..formats import Format
from ..isa import IsaClass
from . import requantize


def rule_of(stem: str) -> str:
    """The schedule_rule of a primitive (its TE epilogue carries it; schedules register under it)."""
    return "deepchip_" + stem


def scalar(default=None):
    """A field of a Weights structure that is not a kernel argument (a bound, an operand type)."""
    return field(default=default, metadata={"scalar": True})


@dataclass(frozen=True, eq=False)
class Weights:
    """Base of each primitive's packed weights: a frozen dataclass whose array fields, in
    declaration order, are the kernel's weight arguments (numpy arrays when packed, the matching
    TE tensors inside `compute`); fields made with `scalar()` are facts the compute needs."""

    def _array_names(self) -> list[str]:
        return [f.name for f in fields(self) if not f.metadata.get("scalar")]

    def arrays(self) -> list:
        return [getattr(self, name) for name in self._array_names()]

    def with_arrays(self, arrays) -> "Weights":
        """The same structure over other arrays (TE tensors of the same shapes)."""
        names = self._array_names()
        assert len(arrays) == len(names), (names, len(arrays))
        return replace(self, **dict(zip(names, arrays)))

    def nbytes(self) -> int:
        """What the kernel reads of them at run time, as stored."""
        return int(sum(a.nbytes for a in self.arrays()))


@dataclass(frozen=True)
class Site:
    """What a primitive's compute and reference need of the layer besides its packed weights."""

    geo: object  # the op's geometry: conv_layout.ConvGeometry or dense_layout.DenseShape
    epi: requantize.Epilogue
    zp: int  # the input zero point (convolution padding holds it)
    isa: IsaClass  # the target's ISA class (lower_layer)

    @property
    def taps(self) -> str | None:
        """Sparse convs: the wider type their input codes are stored in (IsaClass.sparse_taps)."""
        return self.isa.sparse_taps


def fit_epilogue(layer, operand: str) -> requantize.Epilogue:
    """The default epilogue: fitted to the layer's own input codes (`operand` unused)."""
    return requantize.fit(layer)


@dataclass(frozen=True)
class Primitive:
    op: str  # QuantLayer.op it computes: "conv2d" | "dense"
    format: Format  # the weight format it reads
    stem: str  # its module's stem: names the PrimFunc (deepchip_<stem>) and the schedule files
    weight_kind: str  # the QuantLayer.weight_kind it packs: "ternary" | "int8" | "binary"
    geometry: Callable  # (layer, in_shape) -> the op's geometry (Site.geo); checks the shapes
    pack: Callable  # (layer, geo, operand) -> its Weights structure (numpy)
    compute: Callable  # (x, weights (TE tensors), epilogue consts, site) -> output te.Tensor
    reference: Callable  # (qx, weights (numpy), site) -> output, the same integer arithmetic
    epilogue: Callable = fit_epilogue  # (layer, operand) -> requantize.Epilogue
    # (geo, epilogue) -> (input shape, input dtype, output shape) of the kernel where they are not
    # the layer's codes and geo.out_shape() (the XNOR primitives read and may write bits); None: those
    packed_io: Callable | None = None
    # (x, weights, consts, site, other, add consts) -> the output plus `other`, requantized
    # (int8_add), where the kernel does the add itself; None: int8_add's stage after compute's
    compute_add: Callable | None = None
    # (geo, weights, input dtype) -> whether the kernel's epilogue takes int16 accumulator pairs
    # (requantize_pairs), where the ISA multiplies them in one instruction; None: never
    int16_pairs: Callable | None = None
    # (site, weights) -> whether its dot products sum product pairs in int16 (primitives/pair_sums);
    # None: never
    pair_sums: Callable | None = None
    # (site, weights, input dtype) -> whether it can read the input of a max pool before it
    # (compute_pooled); None: never
    takes_pool: Callable | None = None
    # (x, weights, consts, site, pool) -> compute's output over x, the input of max pool `pool`
    # (int8_max_pool.Pool) whose output the layer reads
    compute_pooled: Callable | None = None
    # (site, weights, input dtype) -> whether it can read the float input of a quantize before
    # it (compute_quantized); None: never
    takes_quantize: Callable | None = None
    # (x, weights, consts, site, quant) -> compute's output over float x, whose codes are
    # input_quantize.InputQuantize `quant`'s
    compute_quantized: Callable | None = None
    # (site, weights, input dtype) -> whether it can binarize and pack its input itself
    # (compute_binarized); None: never
    takes_binarized: Callable | None = None
    # (x, weights, consts, site, thr) -> compute's output over x [N, C, H, W], whose binarization
    # against thr (binary_pack.te_pack's) is the layer's bit-packed input
    compute_binarized: Callable | None = None
    # whether `pack` takes the target's IsaClass as a fourth argument (a weight layout that
    # depends on the class: xnor_conv2d's paired words)
    pack_by_class: bool = False

    @property
    def rule(self) -> str:
        return rule_of(self.stem)
