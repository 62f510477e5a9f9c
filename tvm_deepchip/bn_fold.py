"""Fold BatchNormalization (inference form) into the convolution before it.

y = gamma * (conv(x, W) + b - mean) / sqrt(var + eps) + beta
  = conv(x, W * k) + (b - mean) * k + beta,   k = gamma / sqrt(var + eps) per output channel.
A BN is folded only when its input is a Conv output read by nothing else and the Conv's weight
(and bias) are initializers; any other BN stays and the quantizer warns about it.
"""
from __future__ import annotations

import logging

import numpy as np
import onnx
from onnx import numpy_helper

log = logging.getLogger(__name__)


def fold_batchnorm(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    """Return a copy of `model` with foldable BNs folded, and the names of the BNs folded."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    inits = {i.name: i for i in g.initializer}
    consumers: dict[str, int] = {}
    for n in g.node:
        for i in n.input:
            consumers[i] = consumers.get(i, 0) + 1
    graph_outputs = {o.name for o in g.output}
    producers = {o: n for n in g.node for o in n.output}
    folded, drop, new_inits = [], set(), {}
    for bn in g.node:
        if bn.op_type != "BatchNormalization" or any(bn.output[1:]):
            continue
        conv = producers.get(bn.input[0])
        if (conv is None or conv.op_type != "Conv" or consumers.get(conv.output[0], 0) != 1
                or conv.output[0] in graph_outputs or conv.input[1] not in inits
                or (len(conv.input) > 2 and conv.input[2] and conv.input[2] not in inits)
                or any(b not in inits for b in bn.input[1:5])):
            continue
        gamma, beta, mean, var = (numpy_helper.to_array(inits[b]).astype(np.float64) for b in bn.input[1:5])
        eps = next((a.f for a in bn.attribute if a.name == "epsilon"), 1e-5)
        k = gamma / np.sqrt(var + eps)
        w = numpy_helper.to_array(inits[conv.input[1]]).astype(np.float64)
        b = (numpy_helper.to_array(inits[conv.input[2]]).astype(np.float64)
             if len(conv.input) > 2 and conv.input[2] else np.zeros(w.shape[0]))
        w_name, b_name = f"{conv.name or conv.output[0]}.weight_folded", f"{conv.name or conv.output[0]}.bias_folded"
        new_inits[w_name] = (w * k.reshape((-1,) + (1,) * (w.ndim - 1))).astype(np.float32)
        new_inits[b_name] = ((b - mean) * k + beta).astype(np.float32)
        del conv.input[1:]
        conv.input.extend([w_name, b_name])
        # The conv now produces the BN's output name, so everything downstream is untouched.
        conv.output[0] = bn.output[0]
        drop.add(id(bn))
        folded.append(bn.name or bn.output[0])
    keep = [n for n in g.node if id(n) not in drop]
    del g.node[:]
    g.node.extend(keep)
    g.initializer.extend(numpy_helper.from_array(v, k) for k, v in new_inits.items())
    _drop_unused_initializers(g)
    if folded:
        log.debug("folded %d BatchNormalization nodes into convolutions", len(folded))
    return out, folded


def _drop_unused_initializers(g: onnx.GraphProto) -> None:
    used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
    all_inits = {i.name for i in g.initializer}
    keep = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(keep)
    inputs = [i for i in g.input if i.name in used or i.name not in all_inits]
    del g.input[:]
    g.input.extend(inputs)
