"""Where the quantizer puts activation QuantizeLinear -> DequantizeLinear pairs, and their scales.

Pairs (DEVELOPERS.md, "The quantized ONNX form"):
- on the data input of every quantized Conv/Gemm/MatMul;
- on the output of every quantized layer but the last, after its bias Add (MatMul) and its
  Relu/Clip when those follow it alone, unless that value is binarized (`binary_act`);
- on both inputs and the (Relu-ed) output of a residual Add of two activations;
- on the output of MaxPool/Flatten/Reshape/GlobalAveragePool whose input has a pair, with that
  pair's scale and zero point, so these ops stay float between DQ and Q.
Scales: uint8 with zero point 0 and scale hi/255 where the value is non-negative (after Relu or
Clip(0, c), through pass-through ops, or a graph input whose calibration minimum is >= 0);
otherwise symmetric int8 with zero point 0 and scale max(|lo|, |hi|)/127.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

from . import binary_act

PASS_THROUGH = ("MaxPool", "Flatten", "Reshape", "GlobalAveragePool")
ACTIVATIONS = ("Relu", "Clip")


@dataclass
class Pair:
    tensor: str
    dtype: str  # "uint8" or "int8"
    scale: float
    source: str | None = None  # pass-through: the tensor whose pair this one copies
    clip_hi: float | None = None


class Graph:
    """Producer/consumer look-ups over a GraphProto."""

    def __init__(self, g: onnx.GraphProto):
        self.g = g
        self.inits = {i.name: i for i in g.initializer}
        self.producer = {o: n for n in g.node for o in n.output}
        self.consumers: dict[str, list] = {}
        for n in g.node:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)
        self.outputs = {o.name for o in g.output}

    def const(self, name):
        return numpy_helper.to_array(self.inits[name]) if name in self.inits else None

    def sole_consumer(self, t):
        c = self.consumers.get(t, [])
        return c[0] if len(c) == 1 and t not in self.outputs else None

    def clip_bounds(self, node):
        lo = self.const(node.input[1]) if len(node.input) > 1 and node.input[1] else None
        hi = self.const(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        return (None if lo is None else float(lo)), (None if hi is None else float(hi))

    def non_negative(self, t) -> bool:
        """Structurally >= 0: Relu, Clip with min >= 0, or a pass-through op of such a value."""
        n = self.producer.get(t)
        while n is not None and n.op_type in PASS_THROUGH:
            n = self.producer.get(n.input[0])
        if n is None:
            return False
        if n.op_type == "Relu":
            return True
        if n.op_type == "Clip":
            lo, _ = self.clip_bounds(n)
            return lo is not None and lo >= 0
        return False

    def layer_output(self, node):
        """The tensor a layer's output pair goes on: after a MatMul's bias Add, then after a
        Relu/Clip that is the sole reader."""
        t = node.output[0]
        c = self.sole_consumer(t)
        if node.op_type == "MatMul" and c is not None and c.op_type == "Add" and any(i in self.inits for i in c.input):
            t, c = c.output[0], self.sole_consumer(c.output[0])
        if c is not None and c.op_type in ACTIVATIONS:
            t = c.output[0]
        return t


def plan_pairs(g: Graph, layers: list, last, graph_input: str) -> dict[str, str | None]:
    """Tensor -> the tensor whose pair it copies (pass-through outputs) or None (calibrated)."""
    want: dict[str, str | None] = {}
    for node in layers:
        want[node.input[0]] = None
        if node is not last and not binary_act.feeds_binarize(g, g.layer_output(node)):
            want[g.layer_output(node)] = None
    for node in g.g.node:
        if node.op_type == "Add" and all(i not in g.inits for i in node.input):
            for i in node.input:
                want[i] = None
            t = node.output[0]
            c = g.sole_consumer(t)
            want[c.output[0] if c is not None and c.op_type in ACTIVATIONS else t] = None
    # Pass-through ops carry their input's pair forward (graph order is topological).
    for node in g.g.node:
        if node.op_type in PASS_THROUGH and node.input[0] in want:
            src = want[node.input[0]] or node.input[0]
            want[node.output[0]] = src
    return want


def make_pairs(g: Graph, want: dict, ranges: dict, graph_input: str) -> dict[str, Pair]:
    pairs = {}
    for t, src in want.items():
        if src is not None:
            continue
        lo, hi = ranges[t]
        p = g.producer.get(t)
        clip_hi = g.clip_bounds(p)[1] if p is not None and p.op_type == "Clip" else None
        if g.non_negative(t) or (t == graph_input and lo >= 0):
            top = min(hi, clip_hi) if clip_hi is not None else hi
            pairs[t] = Pair(t, "uint8", float(max(top, 1e-6)) / 255.0)
        else:
            pairs[t] = Pair(t, "int8", float(max(abs(lo), abs(hi), 1e-6)) / 127.0)
    for t, src in want.items():
        if src is not None:
            pairs[t] = Pair(t, pairs[src].dtype, pairs[src].scale, source=src)
    return pairs


def insert_pairs(model: onnx.ModelProto, pairs: dict[str, Pair]) -> onnx.ModelProto:
    """Put Q -> DQ after each paired tensor and make every reader use the DQ output."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    consts, made = [], {}
    prefix = "qparam"
    while any(i.name.startswith(prefix) for i in g.initializer):  # never shadow a model's name
        prefix += "_"

    def const(value):
        key = (value.dtype.str, value.tobytes())
        if key not in made:
            made[key] = f"{prefix}_{len(made)}"
            consts.append(numpy_helper.from_array(value, made[key]))
        return made[key]

    def pair_nodes(p: Pair):
        zp_type = np.uint8 if p.dtype == "uint8" else np.int8
        s, z = const(np.array(p.scale, np.float32)), const(np.array(0, zp_type))
        base = p.tensor.replace("/", "_")
        return [helper.make_node("QuantizeLinear", [p.tensor, s, z], [f"{base}_q"], name=f"{base}_QuantizeLinear"),
                helper.make_node("DequantizeLinear", [f"{base}_q", s, z], [f"{base}_dq"], name=f"{base}_DequantizeLinear")]

    nodes = []
    for t in [i.name for i in g.input]:
        if t in pairs:
            nodes += pair_nodes(pairs[t])
    for node in g.node:
        nodes.append(node)
        for t in node.output:
            if t in pairs:
                nodes += pair_nodes(pairs[t])
    new_q = {n.name for n in nodes if n.op_type == "QuantizeLinear" and n.input[0] in pairs}
    for node in nodes:
        if node.name in new_q:
            continue
        for k, i in enumerate(node.input):
            if i in pairs:
                node.input[k] = f"{i.replace('/', '_')}_dq"
    del g.node[:]
    g.node.extend(nodes)
    g.initializer.extend(consts)
    return out
