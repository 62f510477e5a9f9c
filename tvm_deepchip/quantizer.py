"""Float ONNX -> DeepChip's quantized form (standard QDQ ONNX, see DEVELOPERS.md).

Steps: load and check; fold BatchNorm into convs; per Conv/Gemm/MatMul choose ternary, int8 or
float weights (first and last layers int8 by default; weights that already are ternary are kept);
calibrate activation ranges on the weight-quantized model (so the ranges are those of the
network that will run, not of the float one); insert the activation QDQ pairs; check; write.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from . import activations, binary_act, calibrate, onnx_io, output_paths
from .bn_fold import fold_batchnorm
from .errors import InputError
from .quant_options import check_keep, check_layer_sparsity, check_options, refuse_binary
from .quant_report import QuantReport, layer_report
from .ternary import binarize, detect_ternary, int8_per_channel, smallest_with_a_zero, ternarize

log = logging.getLogger(__name__)

LAYER_OPS = ("Conv", "Gemm", "MatMul")
HANDLED = set(LAYER_OPS) | set(activations.ACTIVATIONS) | set(activations.PASS_THROUGH) | {"Add"}
MIN_OPSET = 13  # per-axis DequantizeLinear


def _load(model_or_path) -> tuple[onnx.ModelProto, str]:
    if isinstance(model_or_path, onnx.ModelProto):
        model = onnx.ModelProto()
        model.CopyFrom(model_or_path)
        onnx_io.check_model(model, "model")
        where = f"model {model.graph.name!r}"
    elif isinstance(model_or_path, (str, os.PathLike)):
        model = onnx_io.load_model(model_or_path)
        where = str(model_or_path)
    else:
        raise InputError(f"expected an onnx.ModelProto or a path, got {type(model_or_path).__name__}")
    if any(n.op_type in ("QuantizeLinear", "DequantizeLinear", "QLinearConv") for n in model.graph.node):
        raise InputError(f"{where} is already quantized (it has QuantizeLinear/DequantizeLinear nodes); "
                         "give the float model")
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < MIN_OPSET:
        try:
            model = onnx.version_converter.convert_version(model, 17)
        except Exception as err:
            raise InputError(f"{where}: opset {opset} could not be converted to 17 ({err})") from None
    return model, where


def _attr(node, name, default):
    return next((helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)


def _layer_weight(node, g: activations.Graph):
    """The float weight as [Co, ...] and bias [Co], or a reason the layer stays float."""
    if len(node.input) < 2 or node.input[1] not in g.inits:
        return None, None, "its weight is not an initializer"
    w = g.const(node.input[1]).astype(np.float32)
    b = g.const(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    if len(node.input) > 2 and node.input[2] and b is None:
        return None, None, "its bias is not an initializer"
    if node.op_type == "Conv":
        if w.ndim != 4:
            return None, None, f"{w.ndim - 2}-D convolution (only 2-D is quantized)"
    elif node.op_type == "Gemm":
        if _attr(node, "transA", 0):
            return None, None, "Gemm with transA=1"
        w = w if _attr(node, "transB", 0) else w.T
        w = w * np.float32(_attr(node, "alpha", 1.0))
        if b is not None:
            b = np.broadcast_to(b * np.float32(_attr(node, "beta", 1.0)), (w.shape[0],))
    else:  # MatMul x[.., K] @ W[K, Co]
        if w.ndim != 2:
            return None, None, "MatMul with a weight that is not 2-D"
        w = w.T
    if b is None and node.op_type != "MatMul":
        b = np.zeros(w.shape[0], np.float32)
    return np.ascontiguousarray(w), (None if b is None else np.asarray(b, np.float32).reshape(-1)), None


def _set_weight(node, g, new_inits, kind, w, b, payload):
    """Rewrite the node's weight input (and Gemm attributes) for its chosen form."""
    base = (node.name or node.output[0]).replace("/", "_") + ".q"
    while any(n.startswith(base) for n in g.inits):  # never shadow an existing initializer
        base += "_"
    matmul = node.op_type == "MatMul"
    extra = []
    if kind == "int8":
        q, scale = payload.q, payload.scale
        q = q.T.copy() if matmul else q
        names = [f"{base}.w_int8", f"{base}.w_scale", f"{base}.w_zp"]
        new_inits += [numpy_helper.from_array(q, names[0]), numpy_helper.from_array(scale, names[1]),
                      numpy_helper.from_array(np.zeros(scale.shape, np.int8), names[2])]
        w_in = f"{base}.w_dq"
        extra.append(helper.make_node("DequantizeLinear", names, [w_in], name=f"{base}.w_DequantizeLinear",
                                      axis=1 if matmul else 0))
    else:
        w_in = f"{base}.w_{kind}"
        new_inits.append(numpy_helper.from_array((w.T.copy() if matmul else w).astype(np.float32), w_in))
    node.input[1] = w_in
    if not matmul:
        b_name = f"{base}.bias"
        new_inits.append(numpy_helper.from_array(b.astype(np.float32), b_name))
        if len(node.input) > 2:
            node.input[2] = b_name
        else:
            node.input.append(b_name)
    if node.op_type == "Gemm":
        keep = [a for a in node.attribute if a.name not in ("alpha", "beta", "transB")]
        del node.attribute[:]
        node.attribute.extend(keep + [helper.make_attribute("transB", 1)])
    return extra


def _weights(model, g, layers, first_last, threshold, sparsity, per_channel, report, layer_sparsity=None,
             scheme="ternary", keep=None):
    """Quantize the weights of `layers` in place in `model`; returns the list of quantized layers
    and the inner (not kept) ones."""
    new_inits, dq_nodes, quantized, inner = [], {}, [], []
    layer_sparsity = layer_sparsity or {}
    binary = {}  # layer name -> (option, value, smallest value with a zero)
    first, last = (layers[0], layers[-1]) if layers else (None, None)
    for node in layers:
        w, b, why = _layer_weight(node, g)
        name = node.name or node.output[0]
        if why:
            log.warning("node %r (%s) stays float: %s", name, node.op_type, why)
            report.float_nodes.append((name, why))
            continue
        fan_in = int(np.prod(w.shape[1:]))
        tern = detect_ternary(w)
        edge = (node is first or node is last) if keep is None else name in keep
        kind = "ternary" if tern is not None or not edge else first_last
        if not edge:
            inner.append(node)
        if kind == "ternary" and tern is None and scheme != "ternary":
            tern = binarize(w)  # binary weights: a ternary form without zeros
        if kind == "ternary":
            if tern is None:
                s = layer_sparsity.get(name, sparsity)
                tern = ternarize(w, threshold, s, per_channel)
                if not (tern.signs == 0).any():
                    option = "sparsity" if name not in layer_sparsity else f"layer_sparsity[{name!r}]"
                    binary[name] = (option if s is not None else "threshold", threshold if s is None else s,
                                    smallest_with_a_zero(w, s is not None, per_channel))
            dq_nodes[id(node)] = _set_weight(node, g, new_inits, "ternary", tern.weight(), b, tern)
            report.layers.append(layer_report(name, node.op_type, "ternary", w, fan_in, tern.signs, tern.wp,
                                              tern.wn, tern.per_channel, tern.kept))
        elif kind == "int8":
            q = int8_per_channel(w)
            dq_nodes[id(node)] = _set_weight(node, g, new_inits, "int8", w, b, q)
            report.layers.append(layer_report(name, node.op_type, "int8", w, fan_in))
        else:
            dq_nodes[id(node)] = _set_weight(node, g, new_inits, "float", w, b, None)
            report.layers.append(layer_report(name, node.op_type, "float", w, fan_in))
            continue  # float layers read float activations: no pairs around them
        quantized.append(node)
    if binary:
        refuse_binary(binary)
    nodes = []
    for node in model.graph.node:
        nodes += dq_nodes.get(id(node), [])
        nodes.append(node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    model.graph.initializer.extend(new_inits)
    return quantized, inner


def _drop_unused(model):
    g = model.graph
    used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
    keep = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(keep)


def quantize(model_or_path, output_path=None, *, threshold=0.05, sparsity=None, per_channel=False,
             first_last="int8", calib=None, calib_method="minmax", percentile=99.99, seed=0,
             layer_sparsity=None, scheme="ternary", keep=None, act_ranges=None):
    """Quantize a float ONNX model (ModelProto or path) into DeepChip's QDQ form.

    threshold: zeros where |w| <= threshold*max|W| (per layer); sparsity (in [0, 1)) instead picks
    each layer's threshold so that this fraction of its weights is zero. per_channel: one
    (Wp, Wn) pair per output channel. layer_sparsity: {node name: fraction} overrides the
    threshold/sparsity of those ternary layers (weights already ternary are still kept).
    first_last: "int8" (per-channel int8 weights), "float" or "ternary" for the first and last
    layers, or for the layers named in `keep` when given. scheme: the inner layers' weights,
    "ternary", or "bwn" (binary {-a[c], +a[c]}, a[c] = mean|W[c]|), or "xnor" (binary weights and
    binary inputs Where(x >= 0, 1, -1), see `binary_act`); weights already binary or ternary are
    kept, inputs already binarized too. act_ranges: {tensor: (lo, hi)} used instead of
    calibration for those tensors (the ranges training clipped to). calib: float images [N, ...] (array, .npz or .npy
    path) or None (16 random [0, 1) images, with a warning). Returns (ModelProto, QuantReport);
    writes `output_path` atomically when given. Bad input raises InputError and writes nothing."""
    check_options(threshold, sparsity, first_last, calib_method, percentile, scheme)
    if output_path is not None:
        output_paths.check_file(output_path, "output")
    model, where = _load(model_or_path)
    x = calibrate.load_calibration(calib, model, seed)
    report = QuantReport(options=dict(threshold=None if sparsity is not None else threshold, sparsity=sparsity,
                                      per_channel=per_channel, first_last=first_last,
                                      calib_images=int(len(x)), calib_method=calib_method,
                                      percentile=percentile if calib_method == "percentile" else None))
    if scheme != "ternary" or keep is not None:
        report.options.update(scheme=scheme, keep=None if keep is None else list(keep))
    model, report.folded_bn = fold_batchnorm(model)
    g = activations.Graph(model.graph)
    for node in model.graph.node:
        name = node.name or node.output[0]
        if binary_act.part_of_binarize(g, node):
            continue
        if node.op_type not in HANDLED or (node.op_type == "Add" and any(i in g.inits for i in node.input)
                                           and not (g.producer.get(node.input[0]) is not None
                                                    and g.producer[node.input[0]].op_type == "MatMul")):
            why = f"op {node.op_type} is not quantized" + (" (BatchNormalization not after a Conv)"
                                                          if node.op_type == "BatchNormalization" else "")
            log.warning("node %r stays float: %s", name, why)
            report.float_nodes.append((name, why))
    layers = [n for n in model.graph.node if n.op_type in LAYER_OPS]
    layer_sparsity = check_layer_sparsity(layer_sparsity, layers, where)
    keep = check_keep(keep, layers, where)
    if layer_sparsity:
        report.options["layer_sparsity"] = dict(layer_sparsity)
    if not layers:
        log.warning("%s has no Conv/Gemm/MatMul layer: nothing to quantize", where)
    quantized, inner = _weights(model, g, layers, first_last, threshold, sparsity, per_channel, report,
                                layer_sparsity, scheme, keep)
    if scheme == "xnor":
        to_binarize = [n for n in inner if not binary_act.reads_binary(g, n)]
        constant = [n.name or n.output[0] for n in to_binarize if g.non_negative(n.input[0])]
        if constant:  # x >= 0 everywhere: the binary input would be +1 everywhere
            log.warning("layers %s read non-negative values (after Relu/Clip): binarized at 0 they are +1 "
                        "everywhere; train the model with tvm_deepchip.train.prepare(model, 'xnor') instead", constant)
        binary_act.insert(model, to_binarize)
    _drop_unused(model)

    g = activations.Graph(model.graph)
    current = {n.output[0]: n for n in model.graph.node}  # the nodes as they are now (binarized inputs)
    quantized = [current[n.output[0]] for n in quantized if not binary_act.reads_binary(g, current[n.output[0]])]
    layers = [current[n.output[0]] for n in layers]
    inp = calibrate.model_input(model)[0]
    want = activations.plan_pairs(g, quantized, layers[-1] if layers else None, inp)
    given = {t: tuple(map(float, r)) for t, r in (act_ranges or {}).items() if t in want}
    to_measure = [t for t, src in want.items() if src is None and t not in given]
    ranges = calibrate.collect_ranges(model, to_measure, x, calib_method, percentile, seed) if to_measure else {}
    ranges.update(given)
    pairs = activations.make_pairs(g, want, ranges, inp)
    out = activations.insert_pairs(model, pairs)
    report.activations = len(pairs)
    onnx_io.check_model(out, f"quantized {where}")
    if output_path is not None:
        onnx_io.save_model(out, Path(output_path))
    return out, report
