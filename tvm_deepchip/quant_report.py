"""The quantizer's per-layer report: sparsity, Wp/Wn, storage bits per weight of the encodings the
project supports, and the entropy bound for that layer's value distribution.

Bits per weight of the ideal forms (weight values only; the per-layer or per-channel float
scales are left out; weight_sizes.py counts them, and what the kernels really read is the
compile report's):
- packed: 2-bit codes per weight (00 zero, 01 +1, 11 -1) -> 2.0 (`TWO_BIT_CODES_BITS`)
- sparse: per output channel one list of input offsets for the +1 weights and one for the -1
  weights (the sign is in which list), each offset ceil(log2(K)) bits with K the fan-in
  (Ci*KH*KW or the Gemm's K), plus two 16-bit list lengths per channel:
  (1 - s) * ceil(log2(K)) + 32 / K (`offset_lists_bits`)
- int8: 8.0; float: 32.0
- entropy: H(p0, p+, p-) = -sum p log2 p, the least any code of i.i.d. ternary symbols needs.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

import numpy as np

from .formats import Format
from .weight_sizes import TWO_BIT_CODES_BITS, offset_lists_bits


def entropy_bits(p0: float, pp: float, pn: float) -> float:
    return float(-sum(p * math.log2(p) for p in (p0, pp, pn) if p > 0))


@dataclass
class LayerReport:
    name: str
    op: str  # Conv, Gemm, MatMul
    kind: str  # ternary, int8, float
    shape: list
    weights: int
    sparsity: float | None = None  # fraction of zero weights (ternary layers)
    p_pos: float | None = None
    p_neg: float | None = None
    wp: float | list | None = None  # per layer: a float; per channel: a list
    wn: float | list | None = None
    kept_ternary: bool = False  # the input model already held ternary weights here
    bits: dict = field(default_factory=dict)  # encoding -> bits per weight
    entropy: float | None = None


def layer_report(name, op, kind, weight: np.ndarray, fan_in: int, signs=None, wp=None, wn=None,
                 per_channel=False, kept=False) -> LayerReport:
    r = LayerReport(name, op, kind, list(weight.shape), int(weight.size), kept_ternary=kept)
    if kind == "ternary":
        n = signs.size
        r.p_pos, r.p_neg = float(np.sum(signs > 0) / n), float(np.sum(signs < 0) / n)
        r.sparsity = 1.0 - r.p_pos - r.p_neg
        r.wp = [float(v) for v in wp] if per_channel else float(wp[0])
        r.wn = [float(v) for v in wn] if per_channel else float(wn[0])
        r.entropy = entropy_bits(r.sparsity, r.p_pos, r.p_neg)
        r.bits = {Format.PACKED: TWO_BIT_CODES_BITS, Format.SPARSE: offset_lists_bits(r.sparsity, fan_in),
                  Format.INT8: 8.0, Format.FLOAT: 32.0}
    elif kind == "int8":
        r.bits = {Format.INT8: 8.0, Format.FLOAT: 32.0}
    else:
        r.bits = {Format.FLOAT: 32.0}
    return r


@dataclass
class QuantReport:
    layers: list = field(default_factory=list)
    activations: int = 0  # QuantizeLinear/DequantizeLinear pairs inserted
    folded_bn: list = field(default_factory=list)
    float_nodes: list = field(default_factory=list)  # nodes left float, with the reason
    options: dict = field(default_factory=dict)

    def ternary_layers(self) -> list:
        return [layer for layer in self.layers if layer.kind == "ternary"]

    def totals(self) -> dict:
        """Weight storage of the whole model, each ternary layer in its smallest encoding."""
        bits = {"fp32": 0.0, "quantized": 0.0}
        for layer in self.layers:
            bits["fp32"] += 32.0 * layer.weights
            best = min(v for k, v in layer.bits.items())
            bits["quantized"] += best * layer.weights
        return {"weights": sum(layer.weights for layer in self.layers),
                "fp32_bytes": int(bits["fp32"] // 8), "quantized_bytes": int(math.ceil(bits["quantized"] / 8)),
                "compression": bits["fp32"] / bits["quantized"] if bits["quantized"] else 1.0}

    def format(self) -> str:
        def num(v, f="{:.4f}"):
            if v is None:
                return "-"
            if isinstance(v, list):
                return f"{min(v):.4f}..{max(v):.4f}"
            return f.format(v)

        head = ["layer", "op", "kind", "weights", "sparsity", "Wp", "Wn", Format.PACKED, Format.SPARSE, "entropy"]
        rows = [[r.name + (" (kept)" if r.kept_ternary else ""), r.op, r.kind, str(r.weights),
                 num(r.sparsity, "{:.2%}"), num(r.wp), num(r.wn),
                 num(r.bits.get(Format.PACKED), "{:.2f}"), num(r.bits.get(Format.SPARSE), "{:.2f}"), num(r.entropy, "{:.2f}")]
                for r in self.layers]
        widths = [max(len(x) for x in col) for col in zip(head, *rows)]
        line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths))  # noqa: E731
        out = [line(head), line(["-" * w for w in widths])] + [line(r) for r in rows]
        t = self.totals()
        out.append("bits/weight of the ideal forms: packed 2-bit codes; sparse = (1-s)*ceil(log2 K) + 32/K offset "
                   "lists; entropy = H(p0,p+,p-) (the kernels' run-time bytes: the compile report)")
        out.append(f"{len(self.layers)} layers, {t['weights']} weights: {t['fp32_bytes']} B fp32 -> "
                   f"{t['quantized_bytes']} B in the smallest encoding per layer ({t['compression']:.1f}x); "
                   f"{self.activations} activation QDQ pairs; {len(self.folded_bn)} BatchNorms folded")
        for node, why in self.float_nodes:
            out.append(f"left float: {node}: {why}")
        return "\n".join(out)

    def to_dict(self) -> dict:
        return {"layers": [asdict(layer) for layer in self.layers], "activations": self.activations,
                "folded_bn": self.folded_bn, "float_nodes": [list(x) for x in self.float_nodes],
                "options": self.options, "totals": self.totals()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)
