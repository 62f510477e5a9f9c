"""Binary activations in the quantized ONNX form: Where(GreaterOrEqual(x, tau), 1, -1).

The output is exactly +1 or -1 (ONNX Sign(0) is 0, so a bare Sign would not be binary); tau is a
scalar or per-channel constant ([1, C, 1, 1]). A layer whose data input is such a value (or a
max pool / flatten of one) reads binary activations: it gets no QDQ pair on its input, and the
value thresholded gets none either (rounding it first would move the threshold).
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

_KEEP_BINARY = ("MaxPool", "Flatten", "Reshape")  # the max or a reshape of +-1 values is +-1


def _is_const(g, name, value) -> bool:
    v = g.const(name)
    return v is not None and v.size > 0 and bool(np.all(v == value))


def is_binarize(g, node) -> bool:
    """`node` is the Where of Where(GreaterOrEqual(x, tau), 1, -1) with constant tau."""
    if node is None or node.op_type != "Where" or len(node.input) != 3:
        return False
    ge = g.producer.get(node.input[0])
    return (ge is not None and ge.op_type == "GreaterOrEqual" and g.const(ge.input[1]) is not None
            and _is_const(g, node.input[1], 1.0) and _is_const(g, node.input[2], -1.0))


def part_of_binarize(g, node) -> bool:
    if is_binarize(g, node):
        return True
    return node.op_type == "GreaterOrEqual" and any(is_binarize(g, c) for c in g.consumers.get(node.output[0], []))


def is_binary(g, t) -> bool:
    """Tensor `t` holds only +1 / -1 by construction."""
    n = g.producer.get(t)
    while n is not None and n.op_type in _KEEP_BINARY:
        n = g.producer.get(n.input[0])
    return is_binarize(g, n)


def reads_binary(g, layer) -> bool:
    return is_binary(g, layer.input[0])


def feeds_binarize(g, t) -> bool:
    """Every reader of `t` is the comparison of a binarization."""
    readers = g.consumers.get(t, [])
    return bool(readers) and t not in g.outputs and all(
        r.op_type == "GreaterOrEqual" and r.input[0] == t and part_of_binarize(g, r) for r in readers)


def insert(model: onnx.ModelProto, layers: list) -> int:
    """Binarize the data input of each of `layers` (nodes of `model`) at tau = 0; returns how many."""
    g = model.graph
    names = {"tau": np.array(0.0, np.float32), "one": np.array(1.0, np.float32), "minus_one": np.array(-1.0, np.float32)}
    prefix = "binarize"
    existing = {i.name for i in g.initializer} | {o for n in g.node for o in n.output}
    while any(n.startswith(prefix) for n in existing):
        prefix += "_"
    consts = {k: f"{prefix}.{k}" for k in names}
    g.initializer.extend(numpy_helper.from_array(v, consts[k]) for k, v in names.items())
    targets = {n.output[0] for n in layers}  # by name: callers may hold copies of the nodes
    nodes = []
    for node in g.node:
        if node.output[0] in targets:
            base = f"{prefix}.{(node.name or node.output[0]).replace('/', '_')}"
            nodes += [helper.make_node("GreaterOrEqual", [node.input[0], consts["tau"]], [f"{base}.ge"], name=f"{base}.ge"),
                      helper.make_node("Where", [f"{base}.ge", consts["one"], consts["minus_one"]], [f"{base}.out"],
                                       name=f"{base}.where")]
            node.input[0] = f"{base}.out"
        nodes.append(node)
    del g.node[:]
    g.node.extend(nodes)
    return len(targets)
