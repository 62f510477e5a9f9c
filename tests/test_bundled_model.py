"""The bundled trained digits model (real data): its compiled x86 artifact reaches the accuracy
recorded by scripts/train_digits.py (tvm_deepchip/data/digits_train.json, the figure README
quotes) on another machine, exactly but for images near a tie (tests/recorded_figures.py: none
on the machines measured), and agrees with onnxruntime on every test image."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import tvm
from tvm import relax

import tvm_deepchip
from recorded_figures import assert_recorded_accuracy
from tvm_deepchip import data, oracle

DATA = Path(data.__file__).parent
RPC = os.environ.get("DEEPCHIP_RPC")
SHAPES = {"input": [8, 1, 8, 8]}


@pytest.fixture(scope="module")
def bundled(tmp_path_factory):
    test, calib = np.load(DATA / "digits_test.npz"), np.load(DATA / "digits_calib.npz")
    q, _ = tvm_deepchip.quantize(str(DATA / "digits_ternary_float.onnx"), calib=calib["x"])
    # the bundled model has a dynamic batch; compile it for batches of 8
    return q, test["x"].astype(np.float32), test["y"], tmp_path_factory.mktemp("digits")


def _predict(run, x, batch):
    out = []
    for i in range(0, len(x), batch):
        xb = x[i : i + batch]
        pad = batch - len(xb)
        if pad:
            xb = np.concatenate([xb, np.zeros((pad,) + xb.shape[1:], np.float32)])
        out.append(run(xb)[: batch - pad])
    return np.concatenate(out)


def test_compiled_accuracy_equals_recorded_figure(bundled):
    q, x, y, _ = bundled
    compiled = tvm_deepchip.compile(q, "x86", input_shapes=SHAPES)
    rows = {r["layer"]: r for r in compiled.report.layers}
    ternary = [r for r in rows.values() if r.get("kind") == "ternary"]
    assert ternary and all(r["sparsity"] >= 0.9 - 1e-3 for r in ternary)
    vm = relax.VirtualMachine(compiled.executable, tvm.cpu())
    batch = next(iter(compiled.input_shapes.values()))[0]
    logits = _predict(lambda xb: vm["main"](tvm.runtime.tensor(xb)).numpy(), x, batch)
    ref = oracle.run(q, x)
    assert np.array_equal(logits.argmax(1), ref.argmax(1))
    recorded = json.loads((DATA / "digits_train.json").read_text())["test_accuracy"]
    acc = float(np.mean(logits.argmax(1) == y))
    # integer kernels: CPU-independent but for calibration's float statistics (recorded_figures.py)
    assert_recorded_accuracy(logits, y, recorded["ternary_qdq_onnxruntime"], "compiled x86 .so")
    assert acc >= recorded["fp32_onnxruntime"] - 0.005  # the target: within 0.5 points


@pytest.mark.qemu
@pytest.mark.skipif(not RPC, reason="DEEPCHIP_RPC not set: run `eval \"$(bash .ci/qemu_up.sh)\"` first")
def test_aarch64_predictions_equal_x86(bundled):
    from tvm_deepchip import remote

    q, x, _, tmp = bundled
    x86 = tvm_deepchip.compile(q, "x86", input_shapes=SHAPES)
    tvm_deepchip.compile(q, "aarch64", input_shapes=SHAPES, output=tmp / "digits.so")
    vm = relax.VirtualMachine(x86.executable, tvm.cpu())
    batch = next(iter(x86.input_shapes.values()))[0]
    xs = x[: 4 * batch]
    ours = _predict(lambda xb: vm["main"](tvm.runtime.tensor(xb)).numpy(), xs, batch)
    arm = _predict(lambda xb: remote.run_remote(str(tmp / "digits.so"), xb, rpc=RPC, timeout=300), xs, batch)
    assert np.array_equal(arm.argmax(1), ours.argmax(1))
    np.testing.assert_allclose(arm, ours, rtol=1e-5, atol=1e-5 * float(np.abs(ours).max()))
