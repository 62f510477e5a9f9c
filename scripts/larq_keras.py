"""The project's BNN ("xnor" scheme) quantized ONNX model, rebuilt as a Larq / Keras model.

Runs under the Larq venv's python (TensorFlow 2.16 with tf-keras, larq, larq-compute-engine, onnx;
scripts/larq_peer.py sets TF_USE_LEGACY_KERAS before TensorFlow is imported), never the project's.

What maps to what (NCHW ONNX, NHWC Keras):
- a Conv reading Where(x >= 0, 1, -1) (tvm_deepchip/binary_act.py) with weights +-a[c]:
  larq QuantConv2D(input_quantizer="ste_sign", kernel_quantizer="ste_sign", no bias, pad_values=0)
  on x with the weights' signs, then x * a[c] + bias (ChannelAffine), which the LCE converter fuses
  into its binary convolution's output multiplier and bias. ste_sign(0) = +1, as x >= 0 -> +1;
  ONNX pads the binarized input with 0, as pad_values=0.0 does.
- int8 layers (first and last): float Conv2D / Dense with the dequantized weights (w_int8 * scale).
- Quantize/DequantizeLinear on activations: left out (float), so the first and last layers and the
  residual adds are float here where the ONNX model rounds their inputs to int8: the logits differ
  slightly. Clip, Relu, MaxPool, GlobalAveragePool, Add, Flatten, Gemm map one to one.
`notes` lists every place where the Keras model is not the ONNX model's arithmetic.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper


def _attrs(node) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


class _Builder:
    def __init__(self, model: onnx.ModelProto):
        import tensorflow as tf

        self.tf, self.g, self.notes = tf, model.graph, []
        self.const = {i.name: numpy_helper.to_array(i).astype(np.float32) for i in model.graph.initializer}
        self.producer = {o: n for n in model.graph.node for o in n.output}
        self.env: dict = {}  # ONNX tensor -> Keras tensor (NHWC)
        self.binarized: dict = {}  # output of Where(x >= 0, 1, -1) -> x

    def _binarize_source(self, where) -> str | None:
        ge = self.producer.get(where.input[0])
        if (ge is not None and ge.op_type == "GreaterOrEqual" and ge.input[1] in self.const
                and np.all(self.const[ge.input[1]] == 0) and np.all(self.const.get(where.input[1], 0) == 1)
                and np.all(self.const.get(where.input[2], 0) == -1)):
            return ge.input[0]
        return None

    def _padding(self, node, x, k, stride, binary):
        """Keras padding string (and maybe a padded x) for the node's symmetric ONNX pads."""
        L = self.tf.keras.layers
        pads = _attrs(node).get("pads", [0, 0, 0, 0])
        if not any(pads):
            return "valid", x
        h, w = x.shape[1], x.shape[2]
        same = all(p == k // 2 for p in pads) and k % 2 == 1
        if same and (stride == 1 or binary):
            if stride > 1 and (h % stride == 0 or w % stride == 0):
                # TF 'same' pads bottom/right only where ONNX pads all sides: binary layers cannot pad
                # with an explicit 0 (ste_sign(0) = +1), so this layer samples rows shifted by one
                self.notes.append(f"{node.name}: stride {stride} 'same' pads bottom/right (TF) where ONNX pads "
                                  f"{pads} (same work, different border outputs)")
            return "same", x
        if binary:
            raise NotImplementedError(f"{node.name}: binary conv with pads {pads}")
        return "valid", L.ZeroPadding2D(((pads[0], pads[2]), (pads[1], pads[3])))(x)

    def conv(self, node):
        import larq as lq

        L, a = self.tf.keras.layers, _attrs(node)
        w = self.weight(node.input[1])  # [O, I, kh, kw]
        if a.get("group", 1) != 1 or any(d != 1 for d in a.get("dilations", [1, 1])):
            raise NotImplementedError(f"{node.name}: groups / dilations")
        stride, k = a.get("strides", [1, 1])[0], w.shape[2]
        bias = self.const[node.input[2]] if len(node.input) > 2 else np.zeros(w.shape[0], np.float32)
        src = self.binarized.get(node.input[0])
        if src is None:  # float (int8 in ONNX) layer
            pad, x = self._padding(node, self.env[node.input[0]], k, stride, False)
            layer = L.Conv2D(w.shape[0], k, strides=stride, padding=pad, name=node.name)
            out = layer(x)
            layer.set_weights([w.transpose(2, 3, 1, 0), bias])
            return out
        scale = np.abs(w).reshape(w.shape[0], -1).max(1)
        if not np.allclose(np.abs(w), scale[:, None, None, None], rtol=1e-6):
            raise ValueError(f"{node.name}: weights are not +-a[c] (binary)")
        pad, x = self._padding(node, self.env[src], k, stride, True)
        layer = lq.layers.QuantConv2D(w.shape[0], k, strides=stride, padding=pad, pad_values=0.0, use_bias=False,
                                      input_quantizer="ste_sign", kernel_quantizer="ste_sign",
                                      kernel_constraint="weight_clip", name=node.name)
        out = layer(x)
        layer.set_weights([np.where(w >= 0, 1.0, -1.0).astype(np.float32).transpose(2, 3, 1, 0)])
        return ChannelAffine(scale, bias, name=f"{node.name}.affine")(out)

    def weight(self, name) -> np.ndarray:
        if name in self.const:
            return self.const[name]
        dq = self.producer[name]  # DequantizeLinear of an int8 initializer, per channel on axis 0
        q, s = self.const[dq.input[0]], self.const[dq.input[1]]
        zp = self.const[dq.input[2]] if len(dq.input) > 2 else np.zeros_like(s)
        shape = [-1] + [1] * (q.ndim - 1) if s.ndim else []
        return ((q - zp.reshape(shape)) * s.reshape(shape)).astype(np.float32)

    def node(self, n):
        L, op = self.tf.keras.layers, n.op_type
        if op in ("QuantizeLinear", "DequantizeLinear"):
            if n.input[0] in self.env:  # an activation: stays float
                self.env[n.output[0]] = self.env[n.input[0]]
            return
        if op == "GreaterOrEqual":
            return
        if op == "Where":
            src = self._binarize_source(n)
            if src is None:
                raise NotImplementedError(f"{n.name}: Where that is not a binarization")
            self.binarized[n.output[0]] = src
            return
        if any(i in self.binarized for i in n.input) and op != "Conv":
            raise NotImplementedError(f"{n.name}: {op} reads binarized values (only Conv does here)")
        x = self.env.get(n.input[0])
        if op == "Conv":
            out = self.conv(n)
        elif op == "Gemm":
            a, w = _attrs(n), self.weight(n.input[1])
            w = w.T if a.get("transB", 0) else w
            layer = L.Dense(w.shape[1], name=n.name)
            out = layer(x)
            layer.set_weights([w, self.const[n.input[2]] if len(n.input) > 2 else np.zeros(w.shape[1], np.float32)])
        elif op == "Clip":
            lo, hi = (float(self.const[i]) for i in n.input[1:3])
            out = L.ReLU(max_value=hi, name=n.name)(x) if lo == 0 else L.Lambda(
                lambda t, lo=lo, hi=hi: self.tf.clip_by_value(t, lo, hi), name=n.name)(x)
        elif op == "Relu":
            out = L.ReLU(name=n.name)(x)
        elif op == "MaxPool":
            a = _attrs(n)
            if any(a.get("pads", [0])):
                raise NotImplementedError(f"{n.name}: padded MaxPool")
            out = L.MaxPool2D(a["kernel_shape"], a.get("strides", a["kernel_shape"]), name=n.name)(x)
        elif op == "GlobalAveragePool":
            out = L.GlobalAveragePooling2D(keepdims=True, name=n.name)(x)
        elif op == "Add":
            out = L.Add(name=n.name)([self.env[i] for i in n.input])
        elif op == "Flatten":  # NHWC -> the NCHW order the next Gemm's weights expect
            out = L.Flatten(name=n.name)(x if x.shape[1] * x.shape[2] == 1 else L.Permute((3, 1, 2))(x))
        else:
            raise NotImplementedError(f"{n.name}: ONNX op {op}")
        self.env[n.output[0]] = out


def ChannelAffine(scale, bias, name):  # noqa: N802 - a layer factory
    """x * scale[c] + bias[c] with constant (non-trainable) per-channel weights."""
    import tensorflow as tf

    class _Affine(tf.keras.layers.Layer):
        def build(self, shape):
            self.s = self.add_weight(name="scale", shape=scale.shape, initializer=tf.constant_initializer(scale),
                                     trainable=False)
            self.b = self.add_weight(name="bias", shape=bias.shape, initializer=tf.constant_initializer(bias),
                                     trainable=False)

        def call(self, x):
            return x * self.s + self.b

    return _Affine(name=name)


def keras_model(model: onnx.ModelProto):
    """(tf.keras.Model with NHWC input, notes) for the quantized BNN ONNX `model`."""
    b = _Builder(model)
    inp = model.graph.input[0]
    n, c, h, w = (d.dim_value for d in inp.type.tensor_type.shape.dim)
    x = b.tf.keras.Input((h, w, c), batch_size=n, name="input")
    b.env[inp.name] = x
    for node in model.graph.node:
        b.node(node)
    b.notes.insert(0, "first/last layers and activations float (the ONNX model rounds them to int8)")
    return b.tf.keras.Model(x, b.env[model.graph.output[0].name]), b.notes
