"""Reference networks as ONNX builders (opset 17, float32, NCHW): DeepChip's SVHN ConvNet,
ResNet-44 for CIFAR-10 and AlexNet.

Weights are He-initialised from a seed, or taken from `weights` (initializer name -> array).
BatchNorm running statistics are set from the network's own activations on a few random [0, 1)
images (each BN in turn, upstream ones already set), so activations stay normalised through
the depth instead of drifting, and clipped-ReLU outputs use the [0, 1] range.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .errors import InputError

OPSET = 17


class _Net:
    """A small graph builder: NCHW shape tracking and named initializers."""

    def __init__(self, name, in_shape, seed, weights=None):
        self.name = name
        self.rng = np.random.default_rng(seed)
        self.weights = dict(weights or {})
        self.nodes, self.inits, self.bns = [], [], []
        self.in_shape = list(in_shape)
        self.shape = list(in_shape)
        self.cur = "input"

    def he(self, shape, fan_in):
        """He-normal weights (float32 draws: AlexNet's 61M weights in about a second)."""
        return self.rng.standard_normal(shape, dtype=np.float32) * np.float32(np.sqrt(2.0 / fan_in))

    def init(self, name, value):
        value = np.asarray(value, np.float32)
        if name in self.weights:
            given = np.asarray(self.weights.pop(name), np.float32)
            if given.shape != value.shape:
                raise InputError(f"{self.name}: given weight {name!r} has shape {list(given.shape)}, "
                                 f"expected {list(value.shape)}")
            value = given
        self.inits.append(numpy_helper.from_array(value, name))
        return name

    def conv(self, name, co, k, stride=1, pad=0, bias=True):
        ci = self.shape[1]
        fan_in = ci * k * k
        w = self.he((co, ci, k, k), fan_in)
        ins = [self.cur, self.init(f"{name}.weight", w)]
        if bias:
            ins.append(self.init(f"{name}.bias", self.rng.normal(0, 0.05, size=co)))
        self.nodes.append(helper.make_node("Conv", ins, [name], name=name, kernel_shape=[k, k],
                                           strides=[stride] * 2, pads=[pad] * 4))
        n, _, h, wd = self.shape
        self.shape = [n, co, (h + 2 * pad - k) // stride + 1, (wd + 2 * pad - k) // stride + 1]
        self.cur = name
        return name

    def bn(self, name):
        c = self.shape[1]
        ins = [self.cur,
               self.init(f"{name}.scale", self.rng.uniform(0.8, 1.2, size=c)),
               self.init(f"{name}.bias", self.rng.normal(0, 0.1, size=c)),
               self.init(f"{name}.mean", np.zeros(c)),
               self.init(f"{name}.var", np.ones(c))]
        self.nodes.append(helper.make_node("BatchNormalization", ins, [name], name=name, epsilon=1e-5))
        self.bns.append(name)
        self.cur = name

    def op(self, op, name, inputs=None, **attrs):
        self.nodes.append(helper.make_node(op, inputs or [self.cur], [name], name=name, **attrs))
        self.cur = name
        return name

    def relu(self, name):
        return self.op("Relu", name)

    def clip(self, name, hi=1.0):
        lo_c, hi_c = f"{name}.min", f"{name}.max"
        self.inits += [numpy_helper.from_array(np.float32(0), lo_c), numpy_helper.from_array(np.float32(hi), hi_c)]
        return self.op("Clip", name, [self.cur, lo_c, hi_c])

    def maxpool(self, name, k, stride):
        n, c, h, w = self.shape
        self.shape = [n, c, (h - k) // stride + 1, (w - k) // stride + 1]
        return self.op("MaxPool", name, kernel_shape=[k, k], strides=[stride, stride])

    def flatten(self, name):
        n, *rest = self.shape
        self.shape = [n, int(np.prod(rest))]
        return self.op("Flatten", name, axis=1)

    def gemm(self, name, co):
        k = self.shape[1]
        w = self.he((co, k), k)
        ins = [self.cur, self.init(f"{name}.weight", w), self.init(f"{name}.bias", self.rng.normal(0, 0.05, size=co))]
        self.nodes.append(helper.make_node("Gemm", ins, [name], name=name, transB=1))
        self.shape = [self.shape[0], co]
        self.cur = name
        return name

    def model(self) -> onnx.ModelProto:
        if self.weights:
            raise InputError(f"{self.name}: given weights {sorted(self.weights)} are not in the network")
        graph = helper.make_graph(
            self.nodes, self.name,
            [helper.make_tensor_value_info("input", TensorProto.FLOAT, self.in_shape)],
            [helper.make_tensor_value_info(self.cur, TensorProto.FLOAT, self.shape)],
            self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="tvm-deepchip")
        model.ir_version = 8  # onnxruntime reads it; newer onnx writes a version older runtimes reject
        return model


def _set_bn_stats(model: onnx.ModelProto, bns: list[str], given: set, seed: int, n_images: int = 8):
    """Set each BN's running mean/var to the statistics of its input on random [0, 1) images.

    One onnxruntime session: BN statistics are graph inputs while we measure, each BN's input is
    measured with all upstream BNs already set, then they become initializers again."""
    import onnxruntime as ort

    todo = [b for b in bns if f"{b}.mean" not in given and f"{b}.var" not in given]
    if not todo:
        return model
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    stat_names = [f"{b}.{s}" for b in todo for s in ("mean", "var")]
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    keep = [i for i in probe.graph.initializer if i.name not in stat_names]
    del probe.graph.initializer[:]
    probe.graph.initializer.extend(keep)
    for name in stat_names:
        probe.graph.input.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(inits[name].dims)))
    bn_in = {n.name: n.input[0] for n in g.node if n.op_type == "BatchNormalization"}
    for b in todo:
        probe.graph.output.append(helper.make_tensor_value_info(bn_in[b], TensorProto.FLOAT, None))
    sess = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    shape = [d.dim_value for d in g.input[0].type.tensor_type.shape.dim]
    rng = np.random.default_rng(seed + 1)
    xs = rng.random([max(n_images // shape[0], 1) * shape[0]] + shape[1:], dtype=np.float32)
    feed = {name: numpy_helper.to_array(inits[name]) for name in stat_names}
    for b in todo:
        acts = np.concatenate([sess.run([bn_in[b]], {**feed, "input": xs[i:i + shape[0]]})[0]
                               for i in range(0, len(xs), shape[0])])
        feed[f"{b}.mean"] = acts.mean(axis=(0, 2, 3)).astype(np.float32)
        feed[f"{b}.var"] = acts.var(axis=(0, 2, 3)).astype(np.float32) + np.float32(1e-3)
    for name in stat_names:
        inits[name].CopyFrom(numpy_helper.from_array(feed[name], name))
    return model


def _finish(net: _Net, given: dict | None, seed: int) -> onnx.ModelProto:
    model = net.model()
    _set_bn_stats(model, net.bns, set(given or {}), seed)
    onnx.checker.check_model(model)
    return model


def svhn_convnet(batch=1, seed=0, in_hw=40, in_ch=3, num_classes=10, weights=None) -> onnx.ModelProto:
    """DeepChip's SVHN ConvNet: conv48 5x5 valid, maxpool, conv64 3x3, conv64 3x3, maxpool,
    conv128 3x3 valid, conv128 3x3, conv128 3x3 valid, conv512 5x5 valid, fc; BatchNorm after each
    inner conv (convs 2-7, which then carry no bias); Clip(0, 1) activations.

    For inputs smaller than 40x40 (e.g. 8x8 digits): a 'valid' conv whose output would be smaller
    than 1 pixel uses 'same' padding (k // 2) instead, and a 2x2 maxpool on a 1-pixel map is left
    out, so the layer list (and every weight shape but the fc's) stays the same."""
    net = _Net("svhn_convnet", [batch, in_ch, in_hw, in_hw], seed, weights)

    def conv(name, co, k, pad, bn=True):
        if pad == 0 and net.shape[2] - k + 1 < 1:
            pad = k // 2
        net.conv(name, co, k, pad=pad, bias=not bn)
        if bn:
            net.bn(f"{name}.bn")
        net.clip(f"{name}.act")

    def pool(name):
        if net.shape[2] >= 2:
            net.maxpool(name, 2, 2)

    conv("conv1", 48, 5, 0, bn=False)
    pool("pool1")
    conv("conv2", 64, 3, 1)
    conv("conv3", 64, 3, 1)
    pool("pool2")
    conv("conv4", 128, 3, 0)
    conv("conv5", 128, 3, 1)
    conv("conv6", 128, 3, 0)
    conv("conv7", 512, 5, 0)
    net.flatten("flatten")
    net.gemm("fc", num_classes)
    return _finish(net, weights, seed)


def resnet44(batch=1, seed=0, num_classes=10, weights=None) -> onnx.ModelProto:
    """ResNet-44 for CIFAR-10 (He et al. 2016, n = 7): conv3x3 16, three stages of 7 basic blocks
    with 16/32/64 channels, global average pool, fc. Convs carry no bias (BN follows each).
    Downsampling shortcuts are 1x1 stride-2 convs + BN (option B), so every branch is a conv."""
    net = _Net("resnet44", [batch, 3, 32, 32], seed, weights)
    net.conv("conv1", 16, 3, pad=1, bias=False)
    net.bn("conv1.bn")
    net.relu("conv1.relu")
    for stage, co in enumerate((16, 32, 64), start=1):
        for block in range(7):
            p = f"layer{stage}.{block}"
            stride = 2 if stage > 1 and block == 0 else 1
            x, x_shape = net.cur, list(net.shape)
            net.conv(f"{p}.conv1", co, 3, stride=stride, pad=1, bias=False)
            net.bn(f"{p}.bn1")
            net.relu(f"{p}.relu1")
            net.conv(f"{p}.conv2", co, 3, pad=1, bias=False)
            net.bn(f"{p}.bn2")
            y, y_shape = net.cur, list(net.shape)
            if stride != 1 or x_shape[1] != co:
                net.cur, net.shape = x, x_shape
                net.conv(f"{p}.shortcut", co, 1, stride=stride, bias=False)
                net.bn(f"{p}.shortcut.bn")
                x = net.cur
            net.shape = y_shape
            net.op("Add", f"{p}.add", [y, x])
            net.relu(f"{p}.relu2")
    net.op("GlobalAveragePool", "avgpool")
    net.shape = net.shape[:2] + [1, 1]
    net.flatten("flatten")
    net.gemm("fc", num_classes)
    return _finish(net, weights, seed)


def alexnet(batch=1, seed=0, num_classes=1000, lrn=False, weights=None) -> onnx.ModelProto:
    """AlexNet as torchvision defines it (224x224x3, 61.1M parameters): five convs with ReLU and
    3x3/2 maxpools, three fc layers. `lrn=True` adds the original paper's LocalResponseNorm after
    conv1 and conv2 (the quantizer leaves LRN float, with a warning). Dropout is omitted
    (inference)."""
    net = _Net("alexnet", [batch, 3, 224, 224], seed, weights)
    for name, co, k, s, p, pool in (("conv1", 64, 11, 4, 2, True), ("conv2", 192, 5, 1, 2, True),
                                    ("conv3", 384, 3, 1, 1, False), ("conv4", 256, 3, 1, 1, False),
                                    ("conv5", 256, 3, 1, 1, True)):
        net.conv(name, co, k, stride=s, pad=p)
        net.relu(f"{name}.relu")
        if lrn and name in ("conv1", "conv2"):
            net.op("LRN", f"{name}.lrn", size=5, alpha=1e-4, beta=0.75, bias=2.0)
        if pool:
            net.maxpool(f"{name}.pool", 3, 2)
    net.flatten("flatten")
    net.gemm("fc1", 4096)
    net.relu("fc1.relu")
    net.gemm("fc2", 4096)
    net.relu("fc2.relu")
    net.gemm("fc3", num_classes)
    return _finish(net, weights, seed)


MODELS = {"svhn_convnet": svhn_convnet, "resnet44": resnet44, "alexnet": alexnet}


def param_count(model: onnx.ModelProto) -> int:
    """Learnable parameters, as frameworks count them: Conv/Gemm/MatMul weights and biases and
    BatchNorm scale and bias (running statistics and constants such as Clip bounds excluded)."""
    inits = {i.name: int(np.prod(i.dims)) for i in model.graph.initializer}
    learn = set()
    for node in model.graph.node:
        if node.op_type in ("Conv", "Gemm", "MatMul"):
            learn.update(node.input[1:3])
        elif node.op_type == "BatchNormalization":
            learn.update(node.input[1:3])
    return sum(inits[n] for n in learn if n in inits)
