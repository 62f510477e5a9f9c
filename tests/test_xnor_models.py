"""Whole BNN models (tests/qdq_builders.small_bnn) through the compiler: the XNOR layers found,
their outputs decided (bits between XNOR layers, codes before an int8 one, float logits), the
float chain gone, and the compiled model equal to onnxruntime on the same ONNX (the model's
binary weights and thresholds make onnxruntime's float arithmetic exact: qdq_builders)."""
from __future__ import annotations

import numpy as np
import pytest
import tvm
from onnx import helper

import qdq_builders
from tvm_deepchip import compiler, oracle
from tvm_deepchip.passes.xnor_match import decide_outputs, find_sites

XNOR_LAYERS = ["xconv1", "xconv2", "xconv3", "xconv4", "xfc1", "xfc2"]


def _imported(model):
    from tvm_deepchip.onnx_import import static_input_shapes, to_relax
    from tvm_deepchip.passes import IntegerDataMovement

    return IntegerDataMovement()(to_relax(model, static_input_shapes(model)))["main"]


def _run(compiled, x):
    vm = tvm.relax.VirtualMachine(compiled.executable, tvm.cpu())
    return np.concatenate([vm["main"](tvm.runtime.tensor(x[i:i + 1])).numpy() for i in range(len(x))])


@pytest.mark.parametrize("share", [False, True])
def test_sites_and_their_outputs(share):
    func = _imported(qdq_builders.small_bnn(share_binarized=share))
    sites = find_sites(func)
    assert [s.name for s in sites] == XNOR_LAYERS
    decide_outputs(func, sites)
    outs = {s.name: type(s.layer.out).__name__ for s in sites}
    # xconv3 reads the binarized map the float ReduceMean reads too: xconv2 still writes bits
    # (the float chain stays for the other reader)
    assert outs == {"xconv1": "OutBinary", "xconv2": "OutBinary", "xconv3": "OutBinary", "xconv4": "OutQuant",
                    "xfc1": "OutBinary", "xfc2": "NoneType"}
    by = {s.name: s for s in sites}
    assert [len(pools) for _, pools in by["xconv2"].feeds] == [1]  # its max pool runs on bits
    assert by["xconv1"].layer.act_lo == -1.0 and by["xconv1"].layer.act_hi == 1.0
    assert by["xconv1"].tau.shape == (8,) and by["xfc1"].tau.shape == (64,)


@pytest.mark.parametrize("share", [False, True])
def test_compiled_bnn_equals_onnxruntime(share):
    model = qdq_builders.small_bnn(seed=1, share_binarized=share)
    compiled = compiler.compile(model, "x86", tuning_log=None)
    rows = {r["layer"]: r for r in compiled.report.layers}
    assert all(rows[n]["format"] == "xnor" and rows[n]["kind"] == "binary" for n in XNOR_LAYERS), rows
    assert rows["xconv1"]["weight_bytes"] == 3 * 3 * 1 * 48 * 4  # 1 bit a weight, 32 to a word, 40 -> 48 channels
    x = np.random.default_rng(0).uniform(0, 1, (16, 3, 10, 10)).astype(np.float32)
    ours, ref = _run(compiled, x), oracle.run(model, x, batch=1)
    assert np.unique(ref.argmax(1)).size > 1, "degenerate model: one class everywhere"
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-5 * np.abs(ref).max())


def test_lowered_module_keeps_no_float_binarization():
    """Without another reader, no where/greater_equal and no float conv survive: bits throughout."""
    from tvm import relax

    from tvm_deepchip import targets

    model = qdq_builders.small_bnn(seed=2)
    lowering = compiler.lower(model, targets.resolve("x86"))
    ops, tirs = set(), set()

    def visit(e):
        if isinstance(e, relax.Call):
            ops.add(getattr(e.op, "name", ""))
            if getattr(e.op, "name", "") == "relax.call_tir":
                tirs.add(e.args[0].name_hint)

    relax.analysis.post_order_visit(lowering.mod["main"], visit)
    assert not {"relax.where", "relax.greater_equal", "relax.nn.conv2d", "relax.matmul"} & ops
    names = " ".join(sorted(tirs))
    for kernel in ("deepchip_xnor_conv2d", "deepchip_xnor_dense", "bit_maxpool", "binarize_pack"):
        assert kernel in names, (kernel, names)


def test_a_layer_kept_float_and_a_refused_format():
    """xconv2 kept float: xconv1, which fed it bits, writes float for it (TVM binarizes), and the
    model still equals onnxruntime; a ternary format named for an XNOR layer is refused by name."""
    from tvm_deepchip.errors import InputError

    model = qdq_builders.small_bnn(seed=3)
    compiled = compiler.compile(model, "x86", formats={"xconv2": "float"}, tuning_log=None)
    rows = {r["layer"]: r for r in compiled.report.layers}
    assert rows["xconv2"]["format"] == "float" and rows["xconv1"]["format"] == "xnor"
    x = np.random.default_rng(1).uniform(0, 1, (4, 3, 10, 10)).astype(np.float32)
    ref = oracle.run(model, x, batch=1)
    np.testing.assert_allclose(_run(compiled, x), ref, rtol=0, atol=1e-5 * np.abs(ref).max())
    with pytest.raises(InputError, match="layer 'xconv1': cannot use format 'sparse'.*XNOR"):
        compiler.compile(model, "x86", formats={"xconv1": "sparse"}, tuning_log=None)


def test_trained_digits_bnn_equals_onnxruntime():
    """A BNN trained by train.prepare/export (arbitrary scales and BatchNorm-folded biases, not the
    builders' exact lattice): the compiled model predicts what onnxruntime predicts on every test
    image, and its logits agree (scripts/binary_digits.py measures the fully trained ones)."""
    torch = pytest.importorskip("torch")
    from tvm_deepchip.train import digits, export

    data = digits.load_split(0)
    torch.manual_seed(0)
    model = digits.train_scheme(digits.DigitsConvNet(dropout=0.0), data, "xnor", max_steps=20)
    x = data["x_test"][:64]
    q, _ = export(model, torch.from_numpy(x), calib=data["x_calib"])
    compiled = compiler.compile(q, "x86", input_shapes={q.graph.input[0].name: list(x.shape)}, tuning_log=None)
    assert {r["primitive"] for r in compiled.report.layers} >= {"xnor_conv2d"}
    vm = tvm.relax.VirtualMachine(compiled.executable, tvm.cpu())
    ours, ref = vm["main"](tvm.runtime.tensor(x)).numpy(), oracle.run(q, x)
    assert np.array_equal(ours.argmax(1), ref.argmax(1))
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-4 * np.abs(ref).max())


def test_a_binarized_layer_with_ternary_weights_stays_float_and_says_why():
    b = qdq_builders.QDQBuilder([1, 3, 8, 8], seed=0)
    b.qdq(1 / 255)
    b.binarize(3, center=0.5)
    b.conv(8, 3, pad=1, weight="ternary", act=None, name="bin_ternary")
    compiled = compiler.compile(b.model(), "x86", tuning_log=None)
    (row,) = compiled.report.layers
    assert row["format"] == "float" and row["note"].startswith("input is binarized") and "XNOR form" in row["note"]


def test_convs_pack_the_codes_they_read():
    """Binary convs on binarized 8-bit codes that no XNOR layer wrote: each kernel reads the
    codes and thresholds and packs them itself (LowerXnorLayers): one of few channels (the rows
    form) and a second reader of the same codes of the channel form (33 channels); no
    binarize_pack kernel left; the model equals onnxruntime."""
    from tvm import relax

    from tvm_deepchip import targets

    b = qdq_builders.QDQBuilder([1, 3, 6, 32], seed=4)
    b.qdq(1 / 255)
    b.conv(16, 3, pad=1, weight="int8", act="clip", name="conv_first")
    b.qdq(1 / 255)
    binarized = b.binarize(16, center=0.5)
    b.conv(16, 3, pad=1, weight="binary", act="relu", name="xrows")
    b.qdq(1 / 16)
    rows_out = b.cur
    b.cur, b._shape = binarized, [1, 16, 6, 32]
    b.conv(33, 3, pad=1, weight="binary", act="relu", name="xwide")
    b.qdq(1 / 16)
    flat = [b._name("flat"), b._name("flat")]
    b.nodes += [helper.make_node("Flatten", [rows_out], [flat[0]]), helper.make_node("Flatten", [b.cur], [flat[1]])]
    b.cur, b._shape = b._name("both"), [1, (16 + 33) * 6 * 32]
    b.nodes.append(helper.make_node("Concat", flat, [b.cur], axis=1))
    model = b.model()
    calls = []

    def visit(e):
        if isinstance(e, relax.Call) and getattr(e.op, "name", "") == "relax.call_tir":
            calls.append(e.args[0].name_hint)

    relax.analysis.post_order_visit(compiler.lower(model, targets.resolve("x86")).mod["main"], visit)
    assert sum(c.startswith("deepchip_xnor_conv2d_binarized") for c in calls) == 2 and "binarize_pack" not in calls, calls
    compiled = compiler.compile(model, "x86", tuning_log=None)
    x = np.random.default_rng(0).uniform(0, 1, (1, 3, 6, 32)).astype(np.float32)
    ours, ref = _run(compiled, x), oracle.run(model, x)
    assert np.unique(ours).size > 10
    np.testing.assert_array_equal(ours, ref)
