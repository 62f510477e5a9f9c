"""Reference networks: parameter counts computed from the architectures' definitions, output
shapes from an onnxruntime run, BatchNorm statistics that keep activations normalised."""
from __future__ import annotations

import numpy as np
import onnx
import pytest

from tvm_deepchip import models
from tvm_deepchip.errors import InputError
from tvm_deepchip.oracle import session


def conv(ci, co, k, bias=True):
    return ci * co * k * k + (co if bias else 0)


def bn(c):  # learnable scale and bias
    return 2 * c


def fc(k, co):
    return k * co + co


def expected_svhn(in_ch=3, classes=10):
    convs = conv(in_ch, 48, 5) + sum(conv(a, b, k, bias=False) + bn(b) for a, b, k in
                                    [(48, 64, 3), (64, 64, 3), (64, 128, 3), (128, 128, 3), (128, 128, 3), (128, 512, 5)])
    return convs + fc(512, classes)


def expected_resnet44():
    total = conv(3, 16, 3, bias=False) + bn(16)
    ci = 16
    for co in (16, 32, 64):
        for block in range(7):
            total += conv(ci, co, 3, bias=False) + bn(co) + conv(co, co, 3, bias=False) + bn(co)
            if ci != co:
                total += conv(ci, co, 1, bias=False) + bn(co)  # projection shortcut
            ci = co
    return total + fc(64, 10)


def expected_alexnet():
    return (conv(3, 64, 11) + conv(64, 192, 5) + conv(192, 384, 3) + conv(384, 256, 3) + conv(256, 256, 3)
            + fc(256 * 6 * 6, 4096) + fc(4096, 4096) + fc(4096, 1000))


@pytest.fixture(scope="module")
def alexnet():
    return models.alexnet()


def run1(model, batch=1):
    shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    x = np.random.default_rng(3).random(shape, dtype=np.float32)
    assert shape[0] == batch
    return session(model).run(None, {"input": x})[0]


def test_svhn_convnet_params_and_shape():
    m = models.svhn_convnet()
    onnx.checker.check_model(m)
    assert models.param_count(m) == expected_svhn()
    y = run1(m)
    assert y.shape == (1, 10) and np.all(np.isfinite(y))
    ops = [n.op_type for n in m.graph.node]
    assert ops.count("Conv") == 7 and ops.count("BatchNormalization") == 6 and ops.count("Clip") == 7
    assert ops.count("MaxPool") == 2 and ops.count("Gemm") == 1


def test_resnet44_params_and_shape():
    m = models.resnet44()
    assert models.param_count(m) == expected_resnet44()
    assert 0.65e6 < models.param_count(m) < 0.67e6  # the paper's 0.66M
    assert run1(m).shape == (1, 10)
    ops = [n.op_type for n in m.graph.node]
    assert ops.count("Conv") == 1 + 6 * 7 + 2 and ops.count("Add") == 21
    assert ops.count("GlobalAveragePool") == 1


def test_alexnet_params_and_shape(alexnet):
    assert models.param_count(alexnet) == expected_alexnet() == 61_100_840
    y = run1(alexnet)
    assert y.shape == (1, 1000) and np.all(np.isfinite(y))


def test_batch_is_a_parameter():
    m = models.svhn_convnet(batch=3)
    assert run1(m, batch=3).shape == (3, 10)
    r = models.resnet44(batch=2)
    assert run1(r, batch=2).shape == (2, 10)


def test_small_input_svhn_uses_same_padding():
    m = models.svhn_convnet(in_hw=8, in_ch=1)
    assert run1(m).shape == (1, 10)
    # same layers and weight shapes as the 40x40 net (1 input channel): only padding differs
    assert models.param_count(m) == expected_svhn(in_ch=1)
    pads = {n.name: [a.ints for a in n.attribute if a.name == "pads"][0] for n in m.graph.node if n.op_type == "Conv"}
    assert list(pads["conv7"]) == [2, 2, 2, 2]  # would be valid (0) at 40x40


def test_seed_and_given_weights():
    a, b, c = models.svhn_convnet(seed=0), models.svhn_convnet(seed=0), models.svhn_convnet(seed=1)
    wa, wb, wc = ({i.name: onnx.numpy_helper.to_array(i) for i in m.graph.initializer} for m in (a, b, c))
    assert np.array_equal(wa["conv2.weight"], wb["conv2.weight"])
    assert not np.array_equal(wa["conv2.weight"], wc["conv2.weight"])
    given = np.full((10, 512), 0.01, np.float32)
    m = models.svhn_convnet(weights={"fc.weight": given})
    w = {i.name: onnx.numpy_helper.to_array(i) for i in m.graph.initializer}
    assert np.array_equal(w["fc.weight"], given)
    with pytest.raises(InputError, match=r"fc.weight.*\[10, 512\]"):
        models.svhn_convnet(weights={"fc.weight": np.zeros((5, 5), np.float32)})
    with pytest.raises(InputError, match="nope"):
        models.svhn_convnet(weights={"nope": np.zeros(3)})


def test_batchnorm_statistics_normalise_activations():
    """BN outputs have per-channel mean ~ beta and std ~ gamma on fresh random images."""
    m = models.resnet44(batch=8)
    names = [n.output[0] for n in m.graph.node if n.op_type == "BatchNormalization"]
    probe = onnx.ModelProto()
    probe.CopyFrom(m)
    for t in names:
        probe.graph.output.append(onnx.helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, None))
    x = np.random.default_rng(11).random((8, 3, 32, 32), dtype=np.float32)
    outs = session(probe).run(names, {"input": x})
    for t, y in zip(names, outs):
        std = y.std(axis=(0, 2, 3))
        assert 0.4 < np.median(std) < 1.6, (t, np.median(std))
        assert np.abs(y).max() < 50, t
