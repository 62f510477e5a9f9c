"""The compiler on hand-built QDQ models: rewrite coverage, agreement with onnxruntime, errors."""
from __future__ import annotations

import os
import re

import numpy as np
import onnx
import pytest
import tvm
from tvm import relax

import tvm_deepchip
from tvm_deepchip import isa, oracle
from tvm_deepchip.errors import InputError, ToolchainError, UnsupportedError
from tvm_deepchip.formats import FALLBACK_TERNARY
import isa_devices
from qdq_builders import QDQBuilder, small_convnet


def ort_run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    return oracle.run(model, x)


def vm_run(executable, x: np.ndarray) -> np.ndarray:
    vm = relax.VirtualMachine(executable, tvm.cpu())
    return vm["main"](tvm.runtime.tensor(x)).numpy()


def last_layer_step(model: onnx.ModelProto) -> np.ndarray:
    """Per output: how far the logits move if every input of the last (int8) Gemm is off by one
    quantization step: s_in * sum_k |w[c, k]|. Upstream integer rounding (round-half-up in our
    fixed-point requantization vs onnxruntime's float rounding) can move an activation by at
    most one step, so this bounds the disagreement at the output."""
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    prod = {o: n for n in model.graph.node for o in n.output}
    gemm = [n for n in model.graph.node if n.op_type == "Gemm"][-1]
    wdq = prod[gemm.input[1]]
    w = inits[wdq.input[0]].astype(np.float64) * inits[wdq.input[1]].reshape(-1, 1)
    s_in = float(inits[prod[gemm.input[0]].input[1]])
    return s_in * np.abs(w).sum(axis=1)


@pytest.mark.parametrize(
    "act,per_channel,fmt",
    [("clip", False, "sparse"), ("relu", True, "sparse"), ("clip", False, "delta"), ("relu", True, "delta"),
     ("clip", False, "packed"), ("relu", False, "int8"), ("relu", True, "dot")],
)
def test_small_convnet_agrees_with_onnxruntime(act, per_channel, fmt):
    # the int8 format runs a ternary layer exactly only when Wp == Wn
    model = small_convnet(seed=3, act=act, per_channel=per_channel, batch=1, symmetric=fmt == "int8")
    compiled = tvm_deepchip.compile(model, "x86", default_ternary=fmt, tuning_log=None)
    rows = {r["layer"]: r for r in compiled.report.layers}
    assert {"conv_first", "conv_t1", "conv_t2", "fc_t", "fc_last"} <= set(rows)
    assert rows["conv_first"]["kind"] == "int8" and rows["conv_t1"]["kind"] == "ternary"
    assert rows["conv_t1"]["format"] == (FALLBACK_TERNARY if fmt == "dot" else fmt)  # dot: dense layers only
    assert rows["fc_t"]["format"] == fmt
    step = last_layer_step(model)
    rng = np.random.default_rng(7)
    agree = 0
    for _ in range(8):
        x = rng.random((1, 3, 12, 12), dtype=np.float32)
        ours, ref = vm_run(compiled.executable, x), ort_run(model, x)
        assert ours.shape == ref.shape
        assert np.all(np.abs(ours - ref) <= step + 1e-4), (np.abs(ours - ref).max(), step.min())
        agree += int(ours.argmax() == ref.argmax())
    assert agree == 8, f"argmax agrees on only {agree}/8 inputs"


def test_activations_stay_8bit_between_layers():
    """After the rewrites no float tensor sits between two quantized layers."""
    from tvm_deepchip import isa
    from tvm_deepchip.onnx_import import to_relax
    from tvm_deepchip.passes import lower_to_primitives
    from tvm_deepchip.planner import plan_layers

    model = small_convnet(seed=1)
    imported = to_relax(model)
    mod = lower_to_primitives(plan_layers(imported, isa.get("x86-avx512-vnni")))(imported)
    text = mod["main"].script()
    assert "R.nn.conv2d" not in text and "R.matmul" not in text
    assert text.count("R.dequantize") == 0  # the float logits come straight from the last kernel
    # the float image is quantized by the first layer's layout copy (passes/conv_input_fusion)
    assert text.count("R.quantize") == 0 and "R.call_tir(deepchip_int8_conv2d_quantized" in text
    # the pool on 8-bit codes, read by the conv after it as it copies its input (conv_input_fusion)
    assert 'R.nn.max_pool2d' not in text and "deepchip_max_pool" not in text
    assert re.search(r"R\.call_tir\(deepchip_ternary_conv2d_\w+_pooled", text)


def test_export_and_load_with_plain_tvm(tmp_path):
    model = small_convnet(seed=2)
    path = tmp_path / "m.so"
    compiled = tvm_deepchip.compile(model, "x86", tuning_log=None, output=path)
    lib = tvm.runtime.load_module(str(path))
    x = np.random.default_rng(0).random((1, 3, 12, 12), dtype=np.float32)
    np.testing.assert_array_equal(vm_run(lib, x), vm_run(compiled.executable, x))
    # the VM's main is machine code in the library (compiler.VM_EXEC_MODE), not bytecode
    assert lib.imports[0].implements_function("__vmtir__main", query_imports=True)
    # the kernels' argument checks are left out (compiler.BUILD_CONFIG); main's check of the input stays
    vm = relax.VirtualMachine(lib, tvm.cpu())
    for shape, dtype, says in (((1, 3, 12, 11), "float32", "11 vs. 12"), ((1, 3, 12, 12), "float64", "dtype")):
        with pytest.raises((RuntimeError, ValueError), match=says):
            vm["main"](tvm.runtime.tensor(np.zeros(shape, dtype)))


def test_report_counts_compression():
    compiled = tvm_deepchip.compile(small_convnet(seed=4), "x86", tuning_log=None)
    totals = compiled.report.totals()
    assert totals["layers_lowered"] == 5 and totals["layers_float"] == 0
    assert totals["compression"] > 4  # ternary layers dominate; at 90% zeros they are tiny
    text = compiled.report.format()
    assert "conv_t1" in text and "smaller" in text


def test_unsupported_op_names_op_and_node():
    b = QDQBuilder([1, 3, 8, 8])
    b.nodes.append(onnx.helper.make_node("QLinearConv", ["input"] * 8, ["y"], name="weird_conv"))
    b.cur = "y"
    graph = onnx.helper.make_graph(b.nodes, "g", [onnx.helper.make_tensor_value_info("input", 1, [1, 3, 8, 8])],
                                   [onnx.helper.make_tensor_value_info("y", 1, None)])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    with pytest.raises(UnsupportedError, match=r"weird_conv.*QLinearConv"):
        tvm_deepchip.compile(model, "x86", tuning_log=None)


def test_dynamic_input_shape_is_an_error():
    b = QDQBuilder([1, 3, 8, 8])
    b.qdq(1 / 255)
    b.conv(4, 3, pad=1, name="c")
    with pytest.raises(InputError, match=r"input 'input' has a dynamic shape"):
        tvm_deepchip.compile(b.model(dynamic_batch=True), "x86", tuning_log=None)


def test_forced_ternary_format_on_float_weight():
    b = QDQBuilder([1, 3, 8, 8])
    b.qdq(1 / 255)
    b.conv(4, 3, pad=1, name="float_conv")
    b.qdq(4 / 255)
    model = b.model()
    w = next(i for i in model.graph.initializer if onnx.numpy_helper.to_array(i).ndim == 4)
    w.CopyFrom(onnx.numpy_helper.from_array(np.random.default_rng(0).normal(size=(4, 3, 3, 3)).astype(np.float32), w.name))
    with pytest.raises(InputError, match=r"float_conv.*neither ternary- nor binary-valued"):
        tvm_deepchip.compile(model, "x86", formats={"float_conv": "sparse"}, tuning_log=None)
    # unforced, the layer stays float and the report says why
    compiled = tvm_deepchip.compile(model, "x86", tuning_log=None)
    assert compiled.report.layers[0]["primitive"] == "tvm-float"


def test_missing_cross_compiler_is_reported_before_compiling(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on PATH: no aarch64-linux-gnu-g++
    out = tmp_path / "arm.so"
    with pytest.raises(ToolchainError, match=r"aarch64-linux-gnu-g\+\+.*apt-get install g\+\+-aarch64-linux-gnu"):
        tvm_deepchip.compile(small_convnet(), "aarch64", tuning_log=None, output=out)
    assert not out.exists() and os.listdir(tmp_path) == []


@pytest.mark.parametrize("args, message", [
    (["--target-json", '{"kind": "cuda"}'], "'cuda' is not a CPU"),
    (["--target", ""], "--target '' is empty"),
    (["--target", "x86", "--target-json", '{"kind": "llvm", "mtriple": "riscv64-linux-gnu"}'], "riscv64"),
])
def test_cli_compile_refuses_a_target_without_kernels(tmp_path, capsys, args, message):
    from tvm_deepchip.cli import main

    model, out = tmp_path / "q.onnx", tmp_path / "m.so"
    onnx.save(small_convnet(), str(model))
    assert main(["compile", str(model), "-o", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("error:") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q.onnx"]


def test_report_names_the_isa_class_and_cpu():
    compiled = tvm_deepchip.compile(small_convnet(), "x86-avx2", tuning_log=None)
    assert compiled.report.target == "x86-avx2 (mcpu haswell)"
    assert compiled.report.format().startswith("target: x86-avx2 (mcpu haswell)\n")
    custom = tvm_deepchip.compile(small_convnet(), target_json={"kind": "llvm", "mtriple": "x86_64-linux-gnu",
                                                                "mcpu": "skylake-avx512"}, tuning_log=None)
    assert custom.report.target == "x86-avx512 (mcpu skylake-avx512)"


@pytest.mark.parametrize("cls, bits", [("x86-avx2", False), ("x86-avx512-vnni", True)])
def test_binary_weight_model_runs_on_integer_kernels(monkeypatch, cls, bits):
    """BinaryConnect/BWN (`quantize --scheme bwn`): the inner layers' weights {-a[c], +a[c]} lower
    to int8 layers on codes +-1 with scale a[c] (exact), where they used to stay float: on AVX-512
    in the bits format (1 bit a weight; on 8x8 images every inner conv has at most 64 positions),
    on AVX2 in the int8 kernels; the model agrees with onnxruntime on the same QDQ file where this
    machine runs the class."""
    from tvm_deepchip import models

    monkeypatch.setenv(isa.X86_SWITCH, cls)
    rng = np.random.default_rng(0)
    q, _ = tvm_deepchip.quantize(models.svhn_convnet(in_hw=8, in_ch=1), calib=rng.random((16, 1, 8, 8), dtype=np.float32),
                                 scheme="bwn")
    compiled = tvm_deepchip.compile(q, "x86", tuning_log=None)
    rows = {r["layer"]: r for r in compiled.report.layers}
    for name in [f"conv{i}" for i in range(2, 8)]:
        row = rows[name]
        assert row["format"] == ("bits" if bits else "int8") and row["note"].startswith("binary weights"), row
        assert row["primitive"] == ("bwn_conv2d" if bits else "int8_conv2d"), row
    assert "note" not in rows["conv1"] and rows["conv1"]["format"] == "int8"  # the first layer: int8 weights of its own
    if not isa_devices.runs_natively(isa.get(cls)):
        return
    step = last_layer_step(q)
    for _ in range(4):
        x = rng.random((1, 1, 8, 8), dtype=np.float32)
        ours, ref = vm_run(compiled.executable, x), ort_run(q, x)
        assert np.all(np.abs(ours - ref) <= step + 1e-4), (np.abs(ours - ref).max(), step.min())


@pytest.mark.parametrize("cls, conv7, others", [
    ("x86-avx2", "ternary_conv2d_dot", "ternary_conv2d_sparse"),  # dot: 512 channels, ~13 taps each
    ("x86-avx512-vnni", "ternary_conv2d_packed", "ternary_conv2d_packed"),  # bit_dot over their one window
])
def test_convs_on_one_pixel_maps_drop_their_padding_taps(monkeypatch, cls, conv7, others):
    """SVHN ConvNet on 8x8 images: conv4-7 run their 3x3 / 5x5 kernels on 1x1 maps padded to the
    kernel. dead_taps.crop keeps the centre tap, the rest read only padding; each is then a
    one-position layer, which format_rule runs by its class: on AVX2 conv7 (512 channels of short
    lists) in the dot form, the others in index rows; on AVX-512 all four as bit-planes through the
    dot product (packed_windows). The model agrees with onnxruntime on the same QDQ file (which
    computes the padded taps), where this machine runs the class."""
    from tvm_deepchip import models

    monkeypatch.setenv(isa.X86_SWITCH, cls)
    rng = np.random.default_rng(3)
    q, _ = tvm_deepchip.quantize(models.svhn_convnet(in_hw=8, in_ch=1), calib=rng.random((16, 1, 8, 8), dtype=np.float32),
                                 sparsity=0.9)
    compiled = tvm_deepchip.compile(q, "x86", tuning_log=None)
    rows = {r["layer"]: r for r in compiled.report.layers}
    for name, k in (("conv4", 3), ("conv5", 3), ("conv6", 3), ("conv7", 5)):
        row = rows[name]
        assert row["shape"][2:] == [1, 1] and f"kernel {k}x{k} -> 1x1 on its 1x1 input" in row["note"], row
        assert row["primitive"] == (conv7 if name == "conv7" else others), row
    assert rows["conv2"]["shape"][2:] == [3, 3] and "note" not in rows["conv2"]  # a 2x2 map: every tap reads it
    if not isa_devices.runs_natively(isa.get(cls)):
        return
    step = last_layer_step(q)
    for _ in range(4):
        x = rng.random((1, 1, 8, 8), dtype=np.float32)
        ours, ref = vm_run(compiled.executable, x), ort_run(q, x)
        assert np.all(np.abs(ours - ref) <= step + 1e-4), (np.abs(ours - ref).max(), step.min())
