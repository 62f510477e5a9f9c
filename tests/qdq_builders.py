"""Small hand-built models in the quantized-ONNX form (DEVELOPERS.md), independent of the
quantizer, so the compiler's rewrite rules are tested on exactly the patterns they claim."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


class QDQBuilder:
    def __init__(self, in_shape, seed=0):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits = [], []
        self.in_shape = list(in_shape)
        self.cur = "input"
        self.n = 0

    def _name(self, base):
        self.n += 1
        return f"{base}{self.n}"

    def const(self, value, dtype=None, name=None):
        name = name or self._name("c")
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def qdq(self, scale, zp=0, dtype=np.uint8, src=None):
        src = src or self.cur
        s, z = self.const(np.float32(scale)), self.const(dtype(zp))
        q, d = self._name("q"), self._name("dq")
        self.nodes += [helper.make_node("QuantizeLinear", [src, s, z], [q]),
                       helper.make_node("DequantizeLinear", [q, s, z], [d])]
        self.cur = d
        return d

    def ternary(self, shape, sparsity=0.9, per_channel=False, symmetric=False):
        signs = self.rng.choice([-1, 0, 1], size=shape, p=[(1 - sparsity) / 2, sparsity, (1 - sparsity) / 2])
        co = shape[0]
        wp = self.rng.uniform(0.05, 0.3, size=co if per_channel else 1).astype(np.float32)
        wn = self.rng.uniform(0.05, 0.3, size=co if per_channel else 1).astype(np.float32)
        wn = wp.copy() if symmetric else wn
        b = (-1,) + (1,) * (len(shape) - 1)
        w = np.where(signs > 0, wp.reshape(b), 0) - np.where(signs < 0, wn.reshape(b), 0)
        return self.const(w.astype(np.float32))

    def binary_weight(self, shape):
        """{-a[c], +a[c]} with a[c] a power of two: onnxruntime's float sums of them are exact, so
        its binarizations (thresholds off the 1/8 lattice those sums and biases lie on) are too."""
        signs = self.rng.choice([-1.0, 1.0], size=shape)
        a = self.rng.choice([0.25, 0.5, 1.0], size=shape[0]).reshape((-1,) + (1,) * (len(shape) - 1))
        return self.const((signs * a).astype(np.float32))

    def binarize(self, channels: int | None = None, center: float = 0.0):
        """Where(x >= tau, 1, -1), tau per channel ([1, C, 1, 1] or [C]) or scalar, a multiple of 1/8
        plus 1/16 (never equal to a sum of the binary layers' lattice)."""
        shape = () if channels is None else ((1, channels, 1, 1) if len(self.shape()) == 4 else (channels,))
        tau = (center + self.rng.integers(-4, 4, size=shape) / 8 + 1 / 16).astype(np.float32)
        ge, out = self._name("ge"), self._name("bin")
        self.nodes += [helper.make_node("GreaterOrEqual", [self.cur, self.const(tau)], [ge]),
                       helper.make_node("Where", [ge, self.const(np.float32(1)), self.const(np.float32(-1))], [out])]
        self.cur = out
        return out

    def int8_weight(self, shape):
        q = self.rng.integers(-127, 128, size=shape).astype(np.int8)
        scale = self.rng.uniform(0.002, 0.01, size=shape[0]).astype(np.float32)
        out = self._name("wdq")
        self.nodes.append(helper.make_node("DequantizeLinear", [self.const(q), self.const(scale),
                                                               self.const(np.zeros(shape[0], np.int8))], [out], axis=0))
        return out

    def conv(self, co, k, stride=1, pad=0, weight="ternary", act="relu", name=None, group=1, **kw):
        ci = self.shape()[1]
        shape = (co, ci // group, k, k)
        w = {"ternary": lambda: self.ternary(shape, **kw), "int8": lambda: self.int8_weight(shape),
             "binary": lambda: self.binary_weight(shape)}[weight]()
        b = self.const(self._bias(co, weight))
        out = self._name("conv")
        self.nodes.append(helper.make_node("Conv", [self.cur, w, b], [out], name=name or out, group=group,
                                           kernel_shape=[k, k], strides=[stride] * 2, pads=[pad] * 4))
        self.cur = out
        self._track(co, k, stride, pad)
        return self.activation(act)

    def _bias(self, co, weight):
        if weight == "binary":  # on the 1/8 lattice (binary_weight)
            return (self.rng.integers(-16, 16, size=co) / 8).astype(np.float32)
        return self.rng.normal(0, 0.3, size=co).astype(np.float32)

    def conv_transpose(self, co, k, stride=2, name=None):
        """A float ConvTranspose (weight [Ci, Co, k, k]), no padding."""
        n, ci, h, w = self.shape()
        wt = self.const(self.rng.normal(0, 0.1, size=(ci, co, k, k)).astype(np.float32))
        out = self._name("deconv")
        self.nodes.append(helper.make_node("ConvTranspose", [self.cur, wt], [out], name=name or out,
                                           kernel_shape=[k, k], strides=[stride] * 2))
        self._shape = [n, co, (h - 1) * stride + k, (w - 1) * stride + k]
        self.cur = out
        return out

    def activation(self, act):
        if act == "relu":
            out = self._name("relu")
            self.nodes.append(helper.make_node("Relu", [self.cur], [out]))
            self.cur = out
        elif act == "hardtanh":  # Clip(-1, 1), BNNs' activation before a binarization
            out = self._name("clip")
            self.nodes.append(helper.make_node("Clip", [self.cur, self.const(np.float32(-1)),
                                                        self.const(np.float32(1))], [out]))
            self.cur = out
        elif act == "clip":
            out = self._name("clip")
            self.nodes.append(helper.make_node("Clip", [self.cur, self.const(np.float32(0)),
                                                        self.const(np.float32(1))], [out]))
            self.cur = out
        return self.cur

    def _track(self, co, k, stride, pad):
        n, _, h, w = self._shape
        self._shape = [n, co, (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1]

    def shape(self):
        if not hasattr(self, "_shape"):
            self._shape = list(self.in_shape)
        return self._shape

    def maxpool(self, k=2):
        out = self._name("pool")
        self.nodes.append(helper.make_node("MaxPool", [self.cur], [out], kernel_shape=[k, k], strides=[k, k]))
        n, c, h, w = self.shape()
        self._shape = [n, c, h // k, w // k]
        self.cur = out

    def flatten(self):
        out = self._name("flat")
        self.nodes.append(helper.make_node("Flatten", [self.cur], [out]))
        n, *rest = self.shape()
        self._shape = [n, int(np.prod(rest))]
        self.cur = out

    def gemm(self, co, weight="int8", name=None, act=None, **kw):
        k = self.shape()[1]
        w = {"ternary": lambda: self.ternary((co, k), **kw), "int8": lambda: self.int8_weight((co, k)),
             "binary": lambda: self.binary_weight((co, k))}[weight]()
        b = self.const(self._bias(co, weight))
        out = self._name("gemm")
        self.nodes.append(helper.make_node("Gemm", [self.cur, w, b], [out], name=name or out, transB=1))
        self._shape = [self.shape()[0], co]
        self.cur = out
        return self.activation(act)

    def add(self, other):
        out = self._name("add")
        self.nodes.append(helper.make_node("Add", [self.cur, other], [out]))
        self.cur = out

    def model(self, dynamic_batch=False) -> onnx.ModelProto:
        dims = ["N"] + self.in_shape[1:] if dynamic_batch else self.in_shape
        out_shape = self.shape()
        graph = helper.make_graph(
            self.nodes, "qdq_test",
            [helper.make_tensor_value_info("input", TensorProto.FLOAT, dims)],
            [helper.make_tensor_value_info(self.cur, TensorProto.FLOAT, out_shape)],
            self.inits,
        )
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        onnx.checker.check_model(m)
        return m


def small_convnet(seed=0, act="clip", sparsity=0.9, per_channel=False, batch=1, symmetric=False) -> onnx.ModelProto:
    """int8 first conv, ternary inner convs (stride 1 and 2), maxpool, ternary + int8 Gemms."""
    b = QDQBuilder([batch, 3, 12, 12], seed)
    b.qdq(1 / 255)
    b.conv(8, 3, pad=1, weight="int8", act=act, name="conv_first")
    b.qdq(1 / 255 if act == "clip" else 8 / 255)
    b.conv(12, 3, pad=1, act=act, name="conv_t1", sparsity=sparsity, per_channel=per_channel, symmetric=symmetric)
    b.qdq(1 / 255 if act == "clip" else 4 / 255)
    b.maxpool()
    b.qdq(1 / 255 if act == "clip" else 4 / 255)
    b.conv(16, 3, stride=2, pad=1, act=act, name="conv_t2", sparsity=sparsity, per_channel=per_channel, symmetric=symmetric)
    b.qdq(1 / 255 if act == "clip" else 4 / 255)
    b.flatten()
    b.qdq(1 / 255 if act == "clip" else 4 / 255)
    b.gemm(20, weight="ternary", act=act, name="fc_t", sparsity=sparsity, symmetric=symmetric)
    b.qdq(1 / 255 if act == "clip" else 4 / 255)
    b.gemm(10, weight="int8", name="fc_last")
    return b.model()


def small_bnn(seed=0, batch=1, share_binarized=False) -> onnx.ModelProto:
    """BNN form (XNOR-Net): int8 first conv; binary convs on binarized inputs (stride 1 and 2, a max
    pool between two, a 1x1 to 8-bit codes); flatten; binary Gemms (bits between them, float
    logits). `share_binarized`: one binarized value is also read by a float op (it must then stay)."""
    b = QDQBuilder([batch, 3, 10, 10], seed)
    b.qdq(1 / 255)
    b.conv(8, 3, pad=1, weight="int8", act="clip", name="conv_first")
    b.qdq(1 / 255)
    b.binarize(8, center=0.5)
    b.conv(40, 3, pad=1, weight="binary", act="hardtanh", name="xconv1")
    b.binarize(40)
    b.conv(36, 3, stride=2, pad=1, weight="binary", act=None, name="xconv2")
    b.maxpool()
    binarized = b.binarize(36)
    b.conv(64, 3, pad=1, weight="binary", act=None, name="xconv3")
    b.binarize()
    b.conv(16, 1, weight="binary", act="relu", name="xconv4")
    b.qdq(1 / 16)
    b.flatten()
    b.binarize(b.shape()[1])
    b.gemm(48, weight="binary", name="xfc1")
    b.binarize(48)
    b.gemm(10, weight="binary", name="xfc2")
    if share_binarized:  # + mean of the binarized map: a float reader of a binarized value
        mean = b._name("mean")
        b.nodes.append(helper.make_node("ReduceMean", [binarized], [mean], axes=[1, 2, 3], keepdims=0))
        b.add(mean)
    return b.model()


def quantize_model(quant, shape) -> onnx.ModelProto:
    """One QuantizeLinear of a float input with `quant`'s scale, zero point and code type
    (primitives/input_quantize.InputQuantize)."""
    code = TensorProto.UINT8 if quant.dtype == "uint8" else TensorProto.INT8
    inits = [numpy_helper.from_array(np.array(quant.scale, np.float32), "scale"),
             numpy_helper.from_array(np.array(quant.zero_point, quant.dtype), "zero")]
    graph = helper.make_graph([helper.make_node("QuantizeLinear", ["input", "scale", "zero"], ["codes"])], "quantize",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, list(shape))],
                              [helper.make_tensor_value_info("codes", code, list(shape))], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
