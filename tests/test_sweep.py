"""deepchip sweep: tiny grids on the bundled digits models and real held-out images.

Every point is really quantized, compiled for x86 and run (no mocks); the QAT smoke trains a few
steps per point."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import tvm_deepchip
from tvm_deepchip import data, oracle, sweep, sweep_report
from tvm_deepchip.cli import main
from tvm_deepchip.errors import InputError

D = Path(data.__file__).parent
FP32, TERN = D / "digits_fp32.onnx", D / "digits_ternary_float.onnx"
CALIB, TEST = D / "digits_calib.npz", D / "digits_test.npz"
PNG = b"\x89PNG\r\n\x1a\n"


def _check_outputs(out: Path, n_rows: int) -> dict:
    for name in ("sweep.md", "sweep.json", "accuracy_vs_compression.png", "accuracy_vs_speedup.png"):
        assert (out / name).stat().st_size > 0, name
    for name in ("accuracy_vs_compression.png", "accuracy_vs_speedup.png"):
        assert (out / name).read_bytes()[:8] == PNG
    result = json.loads((out / "sweep.json").read_text())
    rows = result["rows"]
    assert len(rows) == n_rows
    for r in [result["baseline"]] + rows:
        assert set(sweep.COLUMNS) <= set(r), set(sweep.COLUMNS) - set(r)
        assert 0.0 <= r["accuracy"] <= 1.0 and 0.0 <= r["oracle_accuracy"] <= 1.0
        assert r["latency_ms"] > 0 and r["speedup"] > 0 and r["weight_bytes"] > 0
    md = (out / "sweep.md").read_text()
    assert "| point |" in md and md.count("\n| ") == n_rows + 3  # header, rule, baseline, one per row
    assert result["machine"]["cores"] >= 1 and result["machine"]["cpu"] in md
    assert f"command: `{result['command']}`" in md
    return result


def test_ptq_cli_two_points(tmp_path, capsys):
    out = tmp_path / "ptq"
    rc = main(["sweep", str(FP32), "--calib", str(CALIB), "--test", str(TEST), "--sparsities", "0.5,0.9",
               "--runs", "3", "--out", str(out)])
    assert rc == 0
    result = _check_outputs(out, 2)
    assert result["command"].startswith("deepchip sweep ") and "--sparsities 0.5,0.9" in result["command"]
    lo, hi = result["rows"]
    assert lo["sparsity"] == pytest.approx(0.5, abs=1e-3) and hi["sparsity"] == pytest.approx(0.9, abs=1e-3)
    assert hi["compression"] > lo["compression"] > 1.0 and hi["weight_bytes"] < lo["weight_bytes"]
    assert result["baseline"]["fp32_weight_bytes"] == lo["fp32_weight_bytes"]  # same weights counted
    assert result["baseline"]["accuracy"] >= 0.95  # the shipped FP32 model on real held-out digits
    err = capsys.readouterr().err
    assert "ptq s=0.5" in err and "ptq s=0.9" in err  # one progress line per point


def test_thresholds_grow_sparsity():
    rows = sweep.sweep(FP32, CALIB, TEST, thresholds=[0.02, 0.1], runs=2)["rows"]
    assert rows[0]["threshold"] == 0.02 and rows[1]["sparsity"] > rows[0]["sparsity"]
    assert rows[1]["compression"] > rows[0]["compression"]


def test_trained_ternary_model_compiled_matches_fp32():
    """The QAT-trained model: weights kept by the quantizer, compiled accuracy within 0.5 points of
    FP32 and equal to the onnxruntime oracle's on the same quantized model (to one image)."""
    res = sweep.sweep(TERN, CALIB, TEST, thresholds=[0.05], auto=True, budget=0.5, runs=2)
    row, auto = res["rows"][0], res["auto"]
    assert row["sparsity"] >= 0.9
    assert row["accuracy"] >= res["baseline"]["accuracy"] - 0.005
    assert abs(row["accuracy"] - row["oracle_accuracy"]) <= 1 / 450 + 1e-9
    assert auto["layer_sparsity"] == {}  # every ternary layer is trained, nothing left to search
    assert auto["feasible"] and res["rows"][-1]["within_budget"]


def test_auto_greedy_raises_layers_within_budget(tmp_path):
    x, y = sweep.load_images(TEST, True)
    res = sweep.sweep(FP32, CALIB, (x, y), auto=True, budget=100.0, steps=[0.5, 0.9], runs=2)
    auto, row = res["auto"], res["rows"][-1]
    assert auto["feasible"] and sorted(auto["layer_sparsity"]) == ["conv2", "conv3", "conv4", "conv5", "conv6", "conv7"]
    assert set(auto["layer_sparsity"].values()) == {0.9}  # a 100-point budget accepts every step
    assert len(auto["candidates"]) == 1 + 6  # the start plus one step per layer
    assert row["mode"] == "ptq-auto" and row["sparsity"] == pytest.approx(0.9, abs=1e-3)
    assert all(c["oracle_accuracy"] >= auto["accuracy_floor"] for c in auto["candidates"])
    sweep_report.write(res, tmp_path, "deepchip sweep (test)")
    assert "per-layer sparsity chosen" in (tmp_path / "sweep.md").read_text()


def test_layer_sparsity_option():
    _, rep = tvm_deepchip.quantize(str(FP32), sparsity=0.5, layer_sparsity={"conv3": 0.9, "conv7": 0.7},
                                   calib=str(CALIB))
    got = {r.name: r.sparsity for r in rep.ternary_layers()}
    assert got["conv3"] == pytest.approx(0.9, abs=1e-3) and got["conv7"] == pytest.approx(0.7, abs=1e-3)
    assert got["conv2"] == pytest.approx(0.5, abs=1e-3)
    assert rep.options["layer_sparsity"] == {"conv3": 0.9, "conv7": 0.7}
    with pytest.raises(InputError, match="nope"):
        tvm_deepchip.quantize(str(FP32), layer_sparsity={"nope": 0.5}, calib=str(CALIB))
    with pytest.raises(InputError, match="conv3"):
        tvm_deepchip.quantize(str(FP32), layer_sparsity={"conv3": 1.0}, calib=str(CALIB))
    # trained ternary weights are kept whatever the per-layer target
    _, kept = tvm_deepchip.quantize(str(TERN), layer_sparsity={"conv3": 0.5}, calib=str(CALIB))
    assert next(r for r in kept.ternary_layers() if r.name == "conv3").sparsity == pytest.approx(0.9, abs=1e-3)


def test_bad_inputs(tmp_path):
    no_labels = tmp_path / "x.npz"
    np.savez(no_labels, x=np.zeros((4, 1, 8, 8), np.float32))
    with pytest.raises(InputError, match="labels"):
        sweep.sweep(FP32, CALIB, no_labels, sparsities=[0.9])
    with pytest.raises(InputError, match="qat"):
        sweep.sweep(FP32, CALIB, TEST, mode="qat", thresholds=[0.05])
    assert main(["sweep", str(FP32), "--calib", str(CALIB), "--test", str(TEST), "--sparsities", "0.5,x",
                 "--out", str(tmp_path / "o")]) == 2
    assert not (tmp_path / "o").exists()


def test_qat_smoke(tmp_path):
    pytest.importorskip("torch")
    from tvm_deepchip.train.digits import fp32_from_onnx
    from tvm_deepchip.train import digits

    split = digits.load_split(0)
    x, y = sweep.load_images(TEST, True)
    assert np.array_equal(split["x_test"], x)  # the shipped test split is the trainer's
    net = fp32_from_onnx(FP32, split["x_train"])
    import torch

    with torch.no_grad():
        ours = net(torch.from_numpy(x[:64])).numpy()
    ref = oracle.run(str(FP32), x[:64])
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4)  # unfolded BN: same function as the ONNX

    res = sweep.sweep(FP32, CALIB, TEST, mode="qat", sparsities=[0.5, 0.9], max_steps=3, auto=True, runs=2,
                      fp32_start="onnx")
    lo, hi = res["rows"]
    assert lo["mode"] == "qat" and lo["sparsity"] == pytest.approx(0.5, abs=1e-2)
    assert hi["sparsity"] == pytest.approx(0.9, abs=1e-2) and hi["compression"] > lo["compression"]
    assert res["auto"]["method"].startswith("highest-compression")
    sweep_report.write(res, tmp_path, "deepchip sweep --mode qat (test)")
    _check_outputs(tmp_path, 2)
