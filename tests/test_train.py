"""QAT (tvm_deepchip/train) smoke test and the shipped digits model: the ternary layers hold
exactly three values, training lowers the loss, the export matches torch, and the shipped files
score what digits_train.json says in onnxruntime."""
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")
import onnx  # noqa: E402
from onnx import numpy_helper  # noqa: E402

from tvm_deepchip.train import digits, qat  # noqa: E402

DATA = Path(digits.__file__).resolve().parent.parent / "data"


@pytest.fixture(autouse=True)
def _one_thread():
    # the machine is shared; one thread was faster than two for this small net (measured)
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def test_ternarize_straight_through_gradients():
    w = torch.tensor([0.5, -0.4, 0.01, -0.02, 1.0], requires_grad=True)
    wp, wn = torch.tensor(2.0, requires_grad=True), torch.tensor(3.0, requires_grad=True)
    t = qat._Ternarize.apply(w, wp, wn, torch.tensor(0.1))
    assert t.tolist() == [2.0, -3.0, 0.0, 0.0, 2.0]
    g = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    t.backward(g)
    assert float(wp.grad) == 1.0 + 5.0  # sum over the +Wp positions
    assert float(wn.grad) == -2.0  # minus the sum over the -Wn positions
    assert w.grad.tolist() == [2.0 * 1, 3.0 * 2, 3.0, 4.0, 2.0 * 5]  # TTQ's scaled pass-through


def test_sparsity_schedule_ramps_to_target():
    s = [qat.sparsity_schedule(i, 100, 0.9) for i in range(0, 130, 10)]
    assert s[0] == 0.0 and all(b >= a for a, b in zip(s, s[1:])) and s[-1] == 0.9 and s[10] == 0.9


def test_qat_smoke_three_values_loss_decreases_export_matches():
    data = digits.load_split(0)
    x, y = data["x_train"][:384], data["y_train"][:384]
    torch.manual_seed(0)
    model = digits.DigitsConvNet(ternary=True, dropout=0.0)
    # from scratch at 90% zeros throughout (ramp 0): ~3 s on one thread, loss 2.3 -> ~1.2
    hist = digits.train(model, x, y, epochs=1, lr=3e-3, seed=0, batch=32, target_sparsity=0.9,
                        ramp=0.0, max_steps=120)
    assert len(hist) == 120
    assert np.mean(hist[-10:]) < 0.7 * np.mean(hist[:10]), hist
    layers = qat.ternary_layers(model)
    assert [n.split(".")[-1] for n, _ in layers] == ["conv2", "conv3", "conv4", "conv5", "conv6", "conv7"]
    for name, m in layers:
        vals = torch.unique(m.ternary_weight().detach())
        assert vals.tolist() == [-m.wn.item(), 0.0, m.wp.item()], name
        assert float((m.ternary_weight() == 0).float().mean()) >= 0.9, name

    proto = digits.to_onnx(model)
    ternary = proto.metadata_props[0].value.split(",")
    assert ternary == ["conv2", "conv3", "conv4", "conv5", "conv6", "conv7"]
    for init in proto.graph.initializer:
        if init.name.endswith(".weight") and init.name.split(".")[0] in ternary:
            w = numpy_helper.to_array(init)
            assert digits.ternary_values_per_channel(w) <= 3, init.name
            assert (w == 0).mean() >= 0.9, init.name
            for c in range(w.shape[0]):  # one negative, one positive value per channel at most
                assert (np.unique(w[c][w[c] < 0]).size <= 1) and (np.unique(w[c][w[c] > 0]).size <= 1)
    # the exported float graph computes what torch computes without activation rounding
    import onnxruntime as ort

    model.act.quant = False
    with torch.no_grad():
        ref = model(torch.from_numpy(data["x_test"][:64])).numpy()
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"input": data["x_test"][:64]})[0]
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


def _shipped():
    paths = {k: DATA / f"digits_{k}" for k in ("fp32.onnx", "ternary_float.onnx", "test.npz", "calib.npz", "train.json")}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    assert not missing, f"shipped files missing (run scripts/train_digits.py): {missing}"
    return paths


def test_shipped_files_load_and_accuracy_matches_json():
    paths = _shipped()
    report = json.loads(paths["train.json"].read_text())
    test = np.load(paths["test.npz"])
    x, y = test["x"], test["y"]
    assert x.dtype == np.float32 and x.shape[1:] == (1, 8, 8) and y.dtype == np.int64
    assert len(y) == report["data"]["test"] and 0.0 <= x.min() and x.max() <= 1.0
    calib = np.load(paths["calib.npz"])["x"]
    assert calib.shape == (report["data"]["calib"], 1, 8, 8)
    # the split is reproducible from the seed
    again = digits.load_split(report["data"]["seed"])
    np.testing.assert_array_equal(again["x_test"], x)
    np.testing.assert_array_equal(again["y_test"], y)

    acc = report["test_accuracy"]
    assert digits.ort_accuracy(str(paths["fp32.onnx"]), x, y) == acc["fp32_onnxruntime"]
    assert digits.ort_accuracy(str(paths["ternary_float.onnx"]), x, y) == acc["ternary_float_onnxruntime"]


def test_shipped_ternary_model_is_ternary_sparse_and_accurate():
    paths = _shipped()
    report = json.loads(paths["train.json"].read_text())
    model = onnx.load(str(paths["ternary_float.onnx"]))
    onnx.checker.check_model(model)
    ternary = dict((p.key, p.value) for p in model.metadata_props)["deepchip.ternary_layers"].split(",")
    zeros = total = 0
    for init in model.graph.initializer:
        if init.name.endswith(".weight") and init.name.split(".")[0] in ternary:
            w = numpy_helper.to_array(init)
            assert digits.ternary_values_per_channel(w) <= 3, init.name
            zeros, total = zeros + int((w == 0).sum()), total + w.size
    assert total and zeros / total >= 0.9
    acc = report["test_accuracy"]
    assert acc["ternary_float_onnxruntime"] >= acc["fp32_onnxruntime"] - 0.005
