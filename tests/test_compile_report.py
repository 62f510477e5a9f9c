"""The compile report: every weight-bearing layer once, under its ONNX node name, with its
primitive or why it stays float, and float layers' bytes in the totals."""
from __future__ import annotations

import logging

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

import tvm_deepchip
from tvm_deepchip import models
from tvm_deepchip.errors import InputError
from qdq_builders import QDQBuilder


def report_of(model, **kw):
    return tvm_deepchip.compile(model, "x86", tuning_log=None, **kw).report


def names(report) -> list[str]:
    return [r["layer"] for r in report.layers]


def digits_float():
    return models.svhn_convnet(in_hw=8, in_ch=1)  # 8 layers: conv1..conv7, fc


def weight_elements(model) -> int:
    inits = {i.name: i for i in model.graph.initializer}
    return sum(int(np.prod(inits[n.input[1]].dims)) for n in model.graph.node if n.op_type in ("Conv", "Gemm"))


def two_convs(first: str, second: str):
    """A quantized model of two 3x3 convs named `first` and `second`."""
    b = QDQBuilder([1, 4, 6, 6])
    b.qdq(1 / 255)
    b.conv(4, 3, pad=1, name=first)
    b.qdq(4 / 255)
    b.conv(4, 3, pad=1, name=second)
    b.qdq(4 / 255)
    return b.model()


def test_identical_weights_keep_both_names():
    model = two_convs("conv_a", "conv_b")
    conv = [n for n in model.graph.node if n.op_type == "Conv"]
    inits = {i.name: i for i in model.graph.initializer}
    inits[conv[1].input[1]].CopyFrom(numpy_helper.from_array(numpy_helper.to_array(inits[conv[0].input[1]]),
                                                              conv[1].input[1]))
    report = report_of(model)
    assert names(report) == ["conv_a", "conv_b"]
    assert all(r["primitive"].startswith("ternary_conv2d") for r in report.layers)


def test_first_last_float_names_each_layer_once_in_order():
    rng = np.random.default_rng(0)
    q, _ = tvm_deepchip.quantize(digits_float(), calib=rng.random((4, 1, 8, 8), dtype=np.float32), first_last="float")
    report = report_of(q)
    assert names(report) == [f"conv{i}" for i in range(1, 8)] + ["fc"]
    rows = {r["layer"]: r for r in report.layers}
    assert rows["conv1"]["primitive"] == "tvm-float" and "not quantized" in rows["conv1"]["note"]
    assert rows["fc"]["primitive"] == "tvm-float" and "neither ternary- nor binary-valued" in rows["fc"]["note"]
    t = report.totals()
    assert (t["layers_lowered"], t["layers_float"]) == (6, 2)
    assert "6 layers lowered, 2 left float" in report.format()


def test_float_depthwise_conv_listed_and_logged_once(caplog):
    b = QDQBuilder([1, 4, 6, 6])
    b.qdq(1 / 255)
    b.conv(4, 3, pad=1, group=4, name="depthwise")
    b.qdq(4 / 255)
    b.conv(8, 1, name="pointwise")
    b.qdq(4 / 255)
    with caplog.at_level(logging.INFO, logger="tvm_deepchip"):
        report = report_of(b.model())
    assert names(report) == ["depthwise", "pointwise"]
    dw = report.layers[0]
    assert dw["primitive"] == "tvm-float" and dw["note"] == "groups=4"
    assert (report.totals()["layers_lowered"], report.totals()["layers_float"]) == (1, 1)
    said = [r.getMessage() for r in caplog.records if "stays float" in r.getMessage()]
    assert said == ["layer depthwise stays float: groups=4"]


def test_conv_transpose_is_listed():
    b = QDQBuilder([1, 4, 5, 5])
    b.qdq(1 / 255)
    b.conv(4, 3, pad=1, name="conv")
    b.qdq(4 / 255)
    b.conv_transpose(2, 2, name="up")
    report = report_of(b.model())
    assert names(report) == ["conv", "up"]
    up = report.layers[1]
    assert up["op"] == "conv2d_transpose" and up["primitive"] == "tvm-float"
    assert up["note"] == "no DeepChip primitive for conv2d_transpose"
    assert up["fp32_bytes"] == up["weight_bytes"] == 4 * 2 * 2 * 2 * 4


def test_unquantized_float_model_lists_its_layers_as_float():
    model = digits_float()
    report = report_of(model)
    assert names(report) == [f"conv{i}" for i in range(1, 8)] + ["fc"]
    assert all(r["primitive"] == "tvm-float" and r["weight_bytes"] > 0 for r in report.layers)
    t = report.totals()
    assert (t["layers_lowered"], t["layers_float"]) == (0, 8)
    assert t["fp32_weight_bytes"] == t["weight_bytes"] == 4 * weight_elements(model)
    assert t["compression"] == 1.0


def test_totals_count_float_layers_bytes():
    b = QDQBuilder([1, 4, 6, 6])
    b.qdq(1 / 255)
    b.conv(8, 3, pad=1, name="ternary_conv", sparsity=0.9)
    b.qdq(4 / 255)
    b.conv(8, 3, pad=1, group=2, name="grouped")  # stays float: groups=2
    b.qdq(4 / 255)
    report = report_of(b.model())
    rows = {r["layer"]: r for r in report.layers}
    assert rows["grouped"]["fp32_bytes"] == rows["grouped"]["weight_bytes"] == 8 * 4 * 3 * 3 * 4
    t = report.totals()
    assert t["fp32_weight_bytes"] == rows["ternary_conv"]["fp32_bytes"] + rows["grouped"]["fp32_bytes"]
    assert t["weight_bytes"] == rows["ternary_conv"]["weight_bytes"] + rows["grouped"]["weight_bytes"]
    assert t["compression"] == pytest.approx(t["fp32_weight_bytes"] / t["weight_bytes"])


def test_shared_and_constant_node_weights_are_named_per_layer():
    """A weight read by two Gemms (tied weights) and one held by a Constant node: each layer's
    weight constant carries its own node's name after import."""
    from tvm_deepchip.layer_plan import LayerPlan
    from tvm_deepchip.onnx_import import to_relax

    w = np.random.default_rng(0).normal(size=(4, 4)).astype(np.float32)
    nodes = [
        helper.make_node("Constant", [], ["w_const"], value=numpy_helper.from_array(w * 2, "w_const_value")),
        helper.make_node("Gemm", ["x", "w"], ["y1"], name="tied_a", transB=1),
        helper.make_node("Gemm", ["y1", "w"], ["y2"], name="tied_b", transB=1),
        helper.make_node("MatMul", ["y2", "w_const"], ["y3"], name="from_constant"),
    ]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y3", onnx.TensorProto.FLOAT, [1, 4])],
                              [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    plan = LayerPlan.of(to_relax(model))
    assert [(r.name, r.op, r.weight_shape) for r in plan] == [
        ("tied_a", "dense", (4, 4)), ("tied_b", "dense", (4, 4)), ("from_constant", "dense", (4, 4))]
    assert [n.name for n in model.graph.node] == ["", "tied_a", "tied_b", "from_constant"]  # user's model unchanged


def test_initializers_listed_as_graph_inputs_stay_constants():
    """Older ONNX files also list initializers as graph inputs: a weight moved to its layer's
    own input must not leave such an entry behind as a new model input."""
    from tvm_deepchip.onnx_import import to_relax

    model = digits_float()
    listed = [helper.make_tensor_value_info(i.name, i.data_type, list(i.dims)) for i in model.graph.initializer]
    model.graph.input.extend(listed)
    main = to_relax(model, {"input": (1, 1, 8, 8)})["main"]
    assert len(main.params) == 1 and int(main.attrs["num_input"]) == 1


def test_formats_naming_no_layer_is_an_error():
    b = QDQBuilder([1, 4, 6, 6])
    b.qdq(1 / 255)
    b.conv(4, 3, pad=1, name="conv")
    b.qdq(4 / 255)
    with pytest.raises(InputError, match=r"--format names layer\(s\) \[.cnv.\] that the model does not have; its layers: \[.conv.\]"):
        report_of(b.model(), formats={"cnv": "packed"})


def test_forced_format_on_an_unquantized_layer_is_an_error():
    with pytest.raises(InputError, match=r"layer 'conv1': cannot use format 'sparse': input is not quantized"):
        report_of(digits_float(), formats={"conv1": "sparse"})


def test_rows_say_why_each_layer_has_its_format():
    rows = {r["layer"]: r for r in report_of(two_convs("forced", "by_default"), formats={"forced": "packed"}).layers}
    assert (rows["forced"]["format"], rows["forced"]["format_from"]) == ("packed", "--format")
    # format_rule's default: a 6x6 map walks 6 rows of 8 positions, enough for the delta lists
    assert (rows["by_default"]["format"], rows["by_default"]["format_from"]) == ("delta", "default")


def test_ternary_bytes_are_shown_against_their_entropy_bound():
    """Each ternary row carries its codes' entropy bound; the totals sum rows, and the delta
    lists sit closer to the bound than the uint16 rows of the sparse form."""
    model = two_convs("conv_a", "conv_b")
    by_fmt = {fmt: report_of(model, formats={"conv_a": fmt, "conv_b": fmt}) for fmt in ("delta", "sparse")}
    for fmt, report in by_fmt.items():
        rows = [r for r in report.layers if r["kind"] == "ternary"]
        assert len(rows) == 2 and all(r["entropy_bytes"] > 0 for r in rows)
        t = report.totals()
        assert t["ternary_weight_bytes"] == sum(r["weight_bytes"] for r in rows)
        assert t["ternary_entropy_bytes"] == pytest.approx(sum(r["entropy_bytes"] for r in rows))
        assert f"{t['ternary_vs_entropy']:.2f}x the bound" in report.format()
    codes_bound = by_fmt["delta"].layers[0]["entropy_bytes"]
    assert codes_bound == by_fmt["sparse"].layers[0]["entropy_bytes"] > 0
    assert by_fmt["delta"].totals()["ternary_vs_entropy"] < by_fmt["sparse"].totals()["ternary_vs_entropy"]
