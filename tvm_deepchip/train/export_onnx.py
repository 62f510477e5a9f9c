"""`export(model, example_input, path)`: a model from `prepare`, trained, to DeepChip's quantized
ONNX form (DEVELOPERS.md), which the compiler reads and onnxruntime runs unchanged.

Steps: freeze each layer's forward weight (ternary, binary or int8 values) and fold the BatchNorm
after it (`qat.fold_conv_bn`: a per-channel scale keeps a channel's ternary/binary values and
its zeros exact); write each `QuantAct` as Clip(lo, hi), each `BinaryAct` as
Where(GreaterOrEqual(x, 0), 1, -1); export with torch.onnx (TorchScript exporter, opset 17);
name the ONNX layers after the torch modules; then the quantizer (`quantizer.quantize`) writes
the int8 weights of the kept layers and inserts the activation QDQ pairs, with the ranges of the
Clips (what training clipped and rounded to) as their scales and calibration for any other.
"""
from __future__ import annotations

import copy
import io

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from ..errors import InputError
from ..quantizer import LAYER_OPS, quantize
from . import graph as G
from .qat import fold_conv_bn
from .schemes import BinaryAct, QuantAct, Requant

OPSET = 17


class _Clip(nn.Module):
    def __init__(self, lo: float, hi: float):
        super().__init__()
        self.lo, self.hi = lo, hi

    def forward(self, x):
        return torch.clamp(x, self.lo, self.hi)


class _Binarize(nn.Module):
    def forward(self, x):
        return torch.where(x >= 0, 1.0, -1.0)


def _plain_layer(mod: nn.Module, w: np.ndarray, b: np.ndarray) -> nn.Module:
    if isinstance(mod, nn.Conv2d):
        new = nn.Conv2d(mod.in_channels, mod.out_channels, mod.kernel_size, stride=mod.stride, padding=mod.padding,
                        dilation=mod.dilation, groups=mod.groups, bias=True)
    else:
        new = nn.Linear(mod.in_features, mod.out_features, bias=True)
    with torch.no_grad():
        new.weight.copy_(torch.from_numpy(w))
        new.bias.copy_(torch.from_numpy(b))
    return new


def frozen(model: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """A float32 copy computing the trained model's eval forward with plain torch ops, BatchNorm folded."""
    m = copy.deepcopy(model).float().eval()
    for node in list(m.graph.nodes):
        k = G.kind(m, node)
        mod = G.module(m, node)
        if k == G.LAYER:
            bn_node = G.sole_user(node)
            bn = G.module(m, bn_node) if bn_node is not None and G.kind(m, bn_node) == G.BN else None
            with torch.no_grad():
                w = mod.qweight() if hasattr(mod, "qweight") else mod.weight
            wf, b = fold_conv_bn(w, mod.bias, bn)
            G.set_module(m, node.target, _plain_layer(mod, wf, b))
            if bn is not None:
                G.set_module(m, bn_node.target, nn.Identity())
        elif isinstance(mod, QuantAct):
            G.set_module(m, node.target, _Clip(*mod.bounds()))
        elif isinstance(mod, BinaryAct):
            G.set_module(m, node.target, _Binarize())
        elif isinstance(mod, Requant):  # the quantizer's pass-through pair does this rounding
            G.set_module(m, node.target, nn.Identity())
    return m


def _constants_to_initializers(model: onnx.ModelProto) -> None:
    """Constant nodes -> initializers, so the quantizer reads Clip bounds and binarize constants."""
    g = model.graph
    keep = []
    for n in g.node:
        if n.op_type == "Constant" and len(n.attribute) == 1 and n.attribute[0].name == "value":
            g.initializer.append(numpy_helper.from_array(numpy_helper.to_array(n.attribute[0].t), n.output[0]))
        else:
            keep.append(n)
    del g.node[:]
    g.node.extend(keep)


def _name_layers(model: onnx.ModelProto, names: list[str]) -> None:
    """The Conv/Gemm/MatMul nodes, in order, get the torch module names (the traced order is the
    graph's: torch.onnx records ops as the fx code runs them)."""
    layers = [n for n in model.graph.node if n.op_type in LAYER_OPS]
    if len(layers) != len(names):
        raise InputError(f"the exported ONNX has {len(layers)} Conv/Gemm/MatMul nodes for {len(names)} torch layers "
                         f"{names}: a layer is used twice or a Linear reads a tensor of more than 2 dimensions")
    for node, name in zip(layers, names):
        node.name = name


def to_float_onnx(model: torch.fx.GraphModule, example_input: torch.Tensor) -> onnx.ModelProto:
    """The frozen model as float ONNX (Clip, binarize subgraphs, folded layers), layers named."""
    info = _info(model)
    m = frozen(model)
    buf = io.BytesIO()
    x = torch.as_tensor(example_input).float()
    torch.onnx.export(m, (x,), buf, opset_version=OPSET, dynamo=False, input_names=["input"],
                      output_names=["output"], dynamic_axes={"input": {0: "N"}, "output": {0: "N"}},
                      do_constant_folding=True)
    proto = onnx.load_from_string(buf.getvalue())
    _constants_to_initializers(proto)
    _name_layers(proto, info.layers)
    return proto


def _info(model):
    info = model.meta.get("deepchip") if isinstance(model, torch.fx.GraphModule) else None
    if info is None:
        raise InputError(f"{type(model).__name__} does not come from tvm_deepchip.train.prepare: export needs "
                         "the prepared model (prepare -> train -> export)")
    return info


def clip_ranges(model: onnx.ModelProto) -> dict[str, tuple[float, float]]:
    """Clip output -> its (lo, hi): the ranges the trained QuantActs clipped and rounded to."""
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    return {n.output[0]: (float(inits[n.input[1]]), float(inits[n.input[2]])) for n in model.graph.node
            if n.op_type == "Clip" and len(n.input) == 3 and n.input[1] in inits and n.input[2] in inits}


def export(model: torch.fx.GraphModule, example_input, path=None, *, calib=None, calib_method="minmax"):
    """Write the prepared, trained `model` as DeepChip's quantized ONNX (to `path` when given).

    example_input: a batch of the model's input (torch or numpy), for tracing; calib: images for
    the ranges training did not fix (default: example_input). Returns (ModelProto, QuantReport)."""
    info = _info(model)
    proto = to_float_onnx(model, example_input)
    x = np.asarray(torch.as_tensor(example_input).float()) if calib is None else calib
    return quantize(proto, path, keep=info.keep, scheme=info.scheme, calib=x, calib_method=calib_method,
                    act_ranges=clip_ranges(proto))
