"""The three reference networks, quantized at 90% sparsity, compiled for x86 (and for aarch64,
run on the QEMU device over RPC), agree with onnxruntime running the same quantized ONNX.

Bound: the integer layers are bit-exact with their integer reference, which is the ONNX QDQ
semantics up to rounding at near-ties (tests of each primitive; ResNet's residual adds run in
integers too, primitives/int8_add.py, onnxruntime runs them in float): a value on a rounding
boundary may land one code apart. One code anywhere upstream moves the logits by at most one step of the last
layer, s_in * sum_k |w[c, k]|, which is the bound asserted here.
"""
from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
import tvm
from tvm import relax

import tvm_deepchip
from tvm_deepchip import oracle

from reference_quantized import SPARSITY, quantized

RPC = os.environ.get("DEEPCHIP_RPC")


def last_layer_step(model: onnx.ModelProto) -> np.ndarray:
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    prod = {o: n for n in model.graph.node for o in n.output}
    last = [n for n in model.graph.node if n.op_type in ("Gemm", "MatMul", "Conv")][-1]
    wdq = prod[last.input[1]]
    w = inits[wdq.input[0]].astype(np.float64) * inits[wdq.input[1]].reshape(-1, *[1] * (inits[wdq.input[0]].ndim - 1))
    s_in = float(inits[prod[last.input[0]].input[1]])
    return s_in * np.abs(w.reshape(w.shape[0], -1)).sum(axis=1)


@pytest.fixture(scope="module", params=["svhn_convnet", "resnet44", "alexnet"])
def network(request, tmp_path_factory):
    name = request.param
    _, q, report, shape = quantized(name)
    rng = np.random.default_rng(0)
    rng.random([2] + shape[1:], dtype=np.float32)  # the calibration images (reference_quantized)
    xs = rng.random([3] + shape[1:], dtype=np.float32)[:, None]  # 3 inputs of batch 1
    return name, q, report, xs, tmp_path_factory.mktemp(name)


def test_x86_agrees_with_onnxruntime(network):
    name, q, report, xs, _ = network
    for row in report.ternary_layers():
        assert abs(row.sparsity - SPARSITY) < 0.005
    # "auto": the committed tuning log of this target when it matches this CPU (else defaults)
    compiled = tvm_deepchip.compile(q, "x86", tuning_log="auto")
    totals = compiled.report.totals()
    assert totals["layers_float"] == 0, compiled.report.format()  # every conv/dense lowered
    assert totals["compression"] > 5
    vm = relax.VirtualMachine(compiled.executable, tvm.cpu())
    step = last_layer_step(q)
    for x in xs:
        ours, ref = vm["main"](tvm.runtime.tensor(x)).numpy(), oracle.run(q, x)
        assert ours.shape == ref.shape
        assert np.all(np.abs(ours - ref) <= step + 1e-5), (name, float(np.abs(ours - ref).max()), float(step.min()))
        assert ours.argmax() == ref.argmax(), name


@pytest.mark.qemu
@pytest.mark.skipif(not RPC, reason="DEEPCHIP_RPC not set: run `eval \"$(bash .ci/qemu_up.sh)\"` first")
def test_aarch64_over_rpc_matches_x86(network):
    """Integer layers are bit-identical on both ISAs; the float epilogue of the last layer may
    differ in the last bit (FMA contraction differs between the targets)."""
    from tvm_deepchip import remote

    name, q, _, xs, tmp = network
    x86 = tvm_deepchip.compile(q, "x86", tuning_log=None)
    so = tvm_deepchip.compile(q, "aarch64", tuning_log=None, output=tmp / f"{name}.so")
    vm = relax.VirtualMachine(x86.executable, tvm.cpu())
    x = xs[0]
    ours = vm["main"](tvm.runtime.tensor(x)).numpy()
    arm = remote.run_remote(str(tmp / f"{name}.so"), x, rpc=RPC, timeout=600)
    assert so.report.target.startswith("aarch64-dotprod")
    np.testing.assert_allclose(arm, ours, rtol=1e-5, atol=1e-5 * float(np.abs(ours).max()))
    assert arm.argmax() == ours.argmax()
