"""What scripts/bench.py measures: the paper's three networks, the bundled digits model, and two
small models no kernel or default was developed on (a LeNet-style CNN and an MLP).

A case is the float model the peers run, calibration images, one input, and the float model
tvm-deepchip quantizes (the same one, except for the digits model, which was trained ternary and is
quantized from its ternary-valued float export at its trained sparsity).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

NETWORKS = ("svhn_convnet", "resnet44", "alexnet")
SMALL = ("lenet_cnn", "mlp_784_512_512_10")
DIGITS = "digits"


@dataclass
class Case:
    name: str
    fp32: onnx.ModelProto  # what the peers run
    to_quantize: onnx.ModelProto  # what tvm-deepchip quantizes
    calib: np.ndarray
    x: np.ndarray
    sparsity: float | None  # None: the model's own (trained) zeros, or a binary scheme's none
    scheme: str = "ternary"  # the quantizer's scheme: ternary, or bwn / xnor (binary weights / and activations)


def _random_images(model, n=8, seed=0):
    shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    rng = np.random.default_rng(seed)
    return rng.random([n] + shape[1:], dtype=np.float32), rng.random(shape, dtype=np.float32)


def _small(name: str, seed: int = 7) -> onnx.ModelProto:
    """Plain ONNX graphs written here, not with the package's model builders (He-normal weights)."""
    rng = np.random.default_rng(seed)
    nodes, inits = [], []

    def weight(wname, shape, fan_in):
        inits.append(numpy_helper.from_array(
            (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32), wname))
        inits.append(numpy_helper.from_array(rng.normal(0, 0.05, shape[0]).astype(np.float32), wname + ".b"))
        return [wname, wname + ".b"]

    def node(op, src, dst, extra=(), **attrs):
        nodes.append(helper.make_node(op, [src, *extra], [dst], name=dst, **attrs))
        return dst

    if name == "lenet_cnn":
        in_shape, cur = [1, 1, 28, 28], "input"
        for i, (ci, co) in enumerate(((1, 16), (16, 32)), 1):
            cur = node("Conv", cur, f"conv{i}", weight(f"conv{i}.w", (co, ci, 5, 5), ci * 25), kernel_shape=[5, 5])
            cur = node("Relu", cur, f"relu{i}")
            cur = node("MaxPool", cur, f"pool{i}", kernel_shape=[2, 2], strides=[2, 2])
        cur = node("Flatten", cur, "flatten", axis=1)
        dims = ((512, 128), (128, 10))
    else:
        in_shape, cur = [1, 784], "input"
        dims = ((784, 512), (512, 512), (512, 10))
    for i, (k, co) in enumerate(dims, 1):
        cur = node("Gemm", cur, f"fc{i}", weight(f"fc{i}.w", (co, k), k), transB=1)
        if i < len(dims):
            cur = node("Relu", cur, f"fc{i}.relu")
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info("input", TensorProto.FLOAT, in_shape)],
                              [helper.make_tensor_value_info(cur, TensorProto.FLOAT, [1, 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="bench")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def cases(names, sparsities, schemes=("ternary",)) -> list[Case]:
    """The ternary cases of `names` at each sparsity, then each binary scheme's case of the paper's
    networks (quantized post-training: timing only, the binarized values carry no trained meaning)."""
    out = _ternary_cases(names, sparsities) if "ternary" in schemes else []
    from tvm_deepchip import models

    for scheme in [s for s in schemes if s != "ternary"]:
        for name in [n for n in names if n in NETWORKS]:
            model = models.MODELS[name](batch=1, seed=0)
            calib, x = _random_images(model)
            out.append(Case(name, model, model, calib, x, None, scheme))
    return out


def _ternary_cases(names, sparsities) -> list[Case]:
    from tvm_deepchip import models

    out = []
    for name in names:
        if name == DIGITS:
            data = Path(models.__file__).parent / "data"
            calib = np.load(data / "digits_calib.npz")["x"].astype(np.float32)
            x = np.load(data / "digits_test.npz")["x"][:1].astype(np.float32)
            out.append(Case(name, onnx.load(str(data / "digits_fp32.onnx")),
                            onnx.load(str(data / "digits_ternary_float.onnx")), calib, x, None))
            continue
        model = models.MODELS[name](batch=1, seed=0) if name in NETWORKS else _small(name)
        calib, x = _random_images(model)
        for s in (sparsities if name in NETWORKS else [0.9]):
            out.append(Case(name, model, model, calib, x, s))
    return out
