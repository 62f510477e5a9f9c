"""ONNX node names carried through TVM's ONNX import, on each layer's weight constant.

TVM 0.27's Relax ONNX frontend keeps no trace of node names: it sets no spans, initializers
become anonymous constants and node outputs anonymous variables. What it does keep are the
names of graph inputs, which become the function's parameters. So, before import, each
weight-bearing layer (Conv, ConvTranspose, Gemm, MatMul whose input 1 is an initializer or a
DequantizeLinear of one) reads its weight from a graph input of its own; after import each of
these parameters is bound to a constant whose span names the ONNX node (the span's source
name is where TVM keeps source locations; Relay's frontends put node names there). Constants
are leaves: the rewrites and TVM's mutators hand them on unchanged, so the lowering finds the
name on the weight it reads. One constant per layer: identical or shared weights keep their
own names, which a content hash of the weights cannot do.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import onnx
from onnx import helper, numpy_helper

WEIGHT_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


@dataclass(frozen=True)
class WeightSite:
    """Where one layer reads its weight: node `node` (index in the graph), constant tensor
    `init` (an initializer or a Constant node's output), through DequantizeLinear node `dq`
    (index) or directly (None)."""

    name: str
    node: int
    init: str
    dq: int | None


def constant_tensors(graph: onnx.GraphProto) -> dict:
    """Tensor name -> TensorProto of every initializer and Constant node's value."""
    tensors = {i.name: i for i in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            value = next((a.t for a in node.attribute if a.name == "value"), None)
            if value is not None:
                tensors[node.output[0]] = value
    return tensors


def weight_sites(model: onnx.ModelProto) -> list[WeightSite]:
    """Every weight-bearing layer of the graph, in graph order, with a unique name: the node's
    name, else its first output's; a repeated node name gets its output's name appended."""
    graph = model.graph
    inits = constant_tensors(graph)
    producer = {o: k for k, n in enumerate(graph.node) for o in n.output}
    sites, seen = [], set()
    for k, node in enumerate(graph.node):
        if node.op_type not in WEIGHT_OPS or node.domain not in ("", "ai.onnx") or len(node.input) < 2:
            continue
        src, dq = node.input[1], None
        if src not in inits and src in producer:
            p = graph.node[producer[src]]
            if p.op_type == "DequantizeLinear" and p.input[0] in inits:
                src, dq = p.input[0], producer[src]
        if src not in inits:
            continue  # an activation times an activation: no weight
        name = node.name or node.output[0]
        if name in seen:
            name = f"{name}/{node.output[0]}"
        seen.add(name)
        sites.append(WeightSite(name, k, src, dq))
    return sites


def _fresh(base: str, taken: set) -> str:
    name = base
    while name in taken:
        name += "_"
    taken.add(name)
    return name


def give_weights_inputs(model: onnx.ModelProto) -> tuple[onnx.ModelProto, dict]:
    """A copy of `model` in which each layer reads its weight from a graph input of its own
    (through its DequantizeLinear where there is one, copied if others read it too), and {input name: (layer name,
    weight array)}. Initializers and Constant nodes no longer read are dropped. The user's
    model is left as it is."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    sites = weight_sites(out)
    inits = constant_tensors(graph)
    taken = {i.name for i in graph.input} | set(inits) | {o for n in graph.node for o in n.output}
    readers = Counter([x for n in graph.node for x in n.input] + [o.name for o in graph.output])
    weights, inserted = {}, {}
    for i, site in enumerate(sites):
        node, init = graph.node[site.node], inits[site.init]
        arg = _fresh(f"deepchip_weight_{i}", taken)
        graph.input.append(helper.make_tensor_value_info(arg, init.data_type, list(init.dims)))
        weights[arg] = (site.name, numpy_helper.to_array(init))
        if site.dq is not None and readers[node.input[1]] == 1:
            graph.node[site.dq].input[0] = arg  # this layer's own DequantizeLinear
            continue
        if site.dq is not None:  # shared with other readers: a copy of it for this layer
            dq = onnx.NodeProto()
            dq.CopyFrom(graph.node[site.dq])
            dq.name = _fresh(f"{arg}_dq", taken)
            dq.input[0] = arg
            dq.output[0] = dq.name
            inserted[site.node] = dq
            arg = dq.name
        node.input[1] = arg
    nodes = []
    for k, node in enumerate(graph.node):
        nodes += [inserted[k], node] if k in inserted else [node]
    read = {x for n in nodes for x in n.input} | {o.name for o in graph.output}
    nodes = [n for n in nodes if n.op_type != "Constant" or n.output[0] in read]
    del graph.node[:]
    graph.node.extend(nodes)
    kept = [i for i in graph.initializer if i.name in read]
    dropped = {i.name for i in graph.initializer} - {i.name for i in kept}
    inputs = [i for i in graph.input if i.name not in dropped]  # IR < 4 lists initializers as inputs
    del graph.initializer[:], graph.input[:]
    graph.initializer.extend(kept)
    graph.input.extend(inputs)
    return out, weights


def named_constant(array, name: str):
    """A Relax constant holding `array` whose span names ONNX node `name` (what layer_name reads)."""
    import tvm
    from tvm import relax

    span = tvm.ir.Span(tvm.ir.SourceName(name), 0, 0, 0, 0)
    const = relax.const(array, str(array.dtype))
    return tvm.ir.GenericConst(const.value, const.ty, span)


def bind_named_weights(mod, weights: dict):
    """Bind the weight parameters of `main` (give_weights_inputs) to constants named by span."""
    main = mod["main"]
    binding = {}
    for var in main.params:
        if var.name in weights:
            name, array = weights[var.name]
            binding[var] = named_constant(array, name)
    if len(binding) != len(weights):
        missing = sorted(set(weights) - {v.name for v in binding})
        raise RuntimeError(f"TVM's ONNX import renamed the weight inputs {missing}; cannot name their layers")
    main = main.bind_params(binding)
    mod["main"] = main.with_attr("num_input", len(main.params))
    return mod


def layer_name(weight) -> str | None:
    """The ONNX node name carried by a weight constant (bind_named_weights), else None."""
    span = getattr(weight, "span", None)
    return span.source_name.name if span is not None else None
