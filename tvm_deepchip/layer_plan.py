"""The per-layer plan: every weight-bearing layer of the imported module, keyed by its ONNX
node name, with what was decided for it (primitive, format and why that format, or why it stays
float).

`LayerPlan.of` reads the imported module: each conv / conv-transpose / matmul call whose weight
constant carries an ONNX node name (layer_names) is one layer, listed once, in graph order,
first as float with the reason a float layer has before the lowering rule looks at it. The
planner (planner.py) then records, per name, the kernel the layer lowers to or why it stays
float; the lowering pass only applies it. The compile report's rows are built from the plan
(`rows`). Resize and other weightless ops are not layers here: they carry no weights and have no
DeepChip primitive.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import Enum

import numpy as np

from .encodings import entropy_bound_bits
from .errors import InputError
from .layer import QuantLayer
from .layer_names import layer_name

log = logging.getLogger(__name__)

FLOAT_PRIMITIVE = "tvm-float"
RULE_OPS = ("conv2d", "dense")  # the ops the lowering rule handles (passes/patterns.RULES)
_OPS = {
    "relax.nn.conv1d": "conv1d",
    "relax.nn.conv2d": "conv2d",
    "relax.nn.conv3d": "conv3d",
    "relax.nn.conv1d_transpose": "conv1d_transpose",
    "relax.nn.conv2d_transpose": "conv2d_transpose",
    "relax.nn.conv3d_transpose": "conv3d_transpose",
    "relax.matmul": "dense",
}


class FormatSource(Enum):
    """Why a lowered layer has its format."""

    FORCED = "--format"  # named by the user for this layer
    MEASURED = "formats.json"  # fastest on this ISA class (format_choice, next to the tuning log)
    DEFAULT = "default"  # the default ternary format (or int8 for int8 weights)


@dataclass(frozen=True)
class Lowered:
    """What the plan lowers one layer to."""

    layer: QuantLayer
    format: str
    source: FormatSource
    in_shape: tuple
    rule: object  # passes.patterns.Rule: the rule variant that matched the layer
    kernel: object  # primitives.LoweredLayer: packed constants and TE compute

    @property
    def primitive(self) -> str:
        return self.kernel.primitive

    @property
    def out_shape(self) -> tuple:
        """The layer's output shape (NCHW or [N, Co]), whatever layout its kernel writes."""
        return tuple(self.kernel.layer_out_shape)

    @property
    def weight_bytes(self) -> int:  # weight storage the kernel reads at run time
        return int(self.kernel.weight_bytes)


@dataclass
class LayerRecord:
    name: str  # ONNX node name
    op: str  # conv2d | dense | conv2d_transpose | ...
    weight_shape: tuple  # as the model holds it
    weight_kind: str  # "int8" (a dequantized int8 tensor) or "float"
    reason: str  # why the layer stays float (meaningful while `lowered` is None)
    lowered: Lowered | None = None

    @property
    def fp32_bytes(self) -> int:
        return int(np.prod(self.weight_shape)) * 4

    @property
    def float_bytes(self) -> int:
        """What TVM's float kernel reads: a float32 weight (FoldConstant turns a dequantized
        int8 weight into float32 before the build)."""
        return self.fp32_bytes

    def row(self) -> dict:
        if self.lowered is None:
            return {"layer": self.name, "op": self.op, "kind": self.weight_kind, "format": "float",
                    "primitive": FLOAT_PRIMITIVE, "shape": list(self.weight_shape), "weight_bytes": self.float_bytes,
                    "fp32_bytes": self.fp32_bytes, "note": self.reason}
        lo, layer = self.lowered, self.lowered.layer
        return {
            "layer": self.name,
            "op": self.op,
            "kind": layer.weight_kind,
            "format": lo.format,
            "format_from": lo.source.value,
            "primitive": lo.primitive,
            **({"dot_operand": lo.kernel.dot_operand} if lo.kernel.dot_operand else {}),
            **({"pair_sums": True} if lo.kernel.pair_sums else {}),
            "shape": list(layer.codes.shape),
            "out_shape": list(lo.out_shape),
            "sparsity": float(np.mean(layer.codes == 0)) if layer.weight_kind == "ternary" else None,
            "weight_bytes": int(lo.weight_bytes),
            "fp32_bytes": self.fp32_bytes,
            # ternary layers: the Shannon bound of their {-1, 0, +1} codes, in bytes (what no
            # lossless form can go below; weight_bytes / entropy_bytes: how far a format is)
            "entropy_bytes": entropy_bound_bits(layer.codes) * layer.codes.size / 8 if layer.weight_kind == "ternary" else None,
            **({"note": layer.meta["note"]} if layer.meta.get("note") else {}),
        }


def _value(expr, var2val):
    from tvm import relax

    while isinstance(expr, relax.Var) and expr in var2val:
        expr = var2val[expr]
    return expr


def _op_name(expr) -> str:
    return getattr(getattr(expr, "op", None), "name", "")


def _record(call, var2val) -> LayerRecord | None:
    op = _OPS.get(_op_name(call))
    if op is None or len(call.args) < 2:
        return None
    w, kind = _value(call.args[1], var2val), "float"
    if _op_name(w) == "relax.permute_dims":  # Gemm transB=1
        w = _value(w.args[0], var2val)
    if _op_name(w) == "relax.dequantize":
        w, kind = _value(w.args[0], var2val), "int8"
    name = layer_name(w)
    if name is None:
        return None
    shape = tuple(int(s) for s in w.ty.shape)
    source = _op_name(_value(call.args[0], var2val))
    if op not in RULE_OPS:
        why = f"no DeepChip primitive for {op}"
    elif source == "relax.where":  # (an XNOR layer the planner lowers replaces this reason)
        why = ("input is binarized (Where(x >= tau, 1, -1)) but the layer is not in the XNOR form: weights "
               "{-a[c], +a[c]} per output channel, groups 1, no dilation, NCHW, a scalar or per-channel tau")
    elif source != "relax.dequantize":
        why = "input is not quantized (no 8-bit QuantizeLinear/DequantizeLinear pair before it)"
    else:
        why = "not in the quantized layer form"
    return LayerRecord(name, op, shape, kind, why)


class LayerPlan:
    """Records by ONNX node name, in graph order."""

    def __init__(self, records=()):
        self.records = {r.name: r for r in records}

    @classmethod
    def of(cls, mod) -> LayerPlan:
        """The planner: every named weight-bearing layer of the imported module."""
        from tvm import relax

        records = []
        for _, func in mod.functions.items():
            if not isinstance(func, relax.Function):
                continue
            var2val = relax.analysis.get_var2val(func)
            found = []
            relax.analysis.post_order_visit(func, lambda e: found.append(e) if isinstance(e, relax.Call) else None)
            records += [r for r in (_record(c, var2val) for c in found) if r is not None]
        return cls(records)

    def __iter__(self):
        return iter(self.records.values())

    def __len__(self) -> int:
        return len(self.records)

    def __contains__(self, name) -> bool:
        return name in self.records

    def lower(self, name: str, lowered: Lowered) -> None:
        self.records[name].lowered = lowered

    def lowered(self, name: str | None) -> Lowered | None:
        """What layer `name` lowers to (None: it stays float, or is no layer of the plan)."""
        record = self.records.get(name)
        return record.lowered if record is not None else None

    def keep_float(self, name: str, why: str) -> None:
        self.records[name].reason = why

    def lowered_layers(self) -> list:
        """(QuantLayer, input shape) of each lowered layer, in graph order."""
        return [(r.lowered.layer, r.lowered.in_shape) for r in self if r.lowered is not None]

    def check_forced(self, formats: dict) -> None:
        """A layer given a primitive format that stayed float is an error, with the reason."""
        for r in self:
            fmt = formats.get(r.name)
            if r.lowered is None and fmt not in (None, "float"):
                raise InputError(f"layer {r.name!r}: cannot use format {fmt!r}: {r.reason}")

    def log_float(self) -> None:
        for r in self:
            if r.lowered is None:
                log.info("layer %s stays float: %s", r.name, r.reason)

    def rows(self) -> list[dict]:
        return [r.row() for r in self]
