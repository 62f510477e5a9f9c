"""tvm_deepchip.train.prepare / export on two architectures built here (ResNet-style, VGG-style),
in every scheme: random init, a few steps on random data, export, onnxruntime (the oracle).

Asserted: every exported layer holds exactly its scheme's values (ternary {-Wn, 0, +Wp} per
channel after BatchNorm folding, binary {-a[c], +a[c]}, kept layers int8 per channel); binary
activations are Where(GreaterOrEqual(x, 0), 1, -1) and hold only +1/-1; onnxruntime's output equals
torch's (tolerance below); gradients reach latent weights and learned scales; bad input errors.

Tolerance, torch (float32, eval) vs onnxruntime (oracle, integer QDQ layers): every 8-bit point
of the exported model quantizes with the scale training used (the Clip bounds of the QuantActs),
so both compute the same integers at every 8-bit point unless a value falls within float32
rounding error (~1e-6 relative) of a rounding boundary (a half step of 1/255 of the range): with
the 5e4-1e5 values rounded per case here that has a probability of order 1e-3, and the values
are fixed by the seeds. Measured (znver4, one thread): every QDQ point and every binarization of
every case agreed exactly with torch's, and the logits differed by at most 9e-8 (float32
summation order in the last layer, whose output has no pair) on logits below 0.7. Average pools feeding a rounding point average an
odd number of values (the ResNet's 5x5 map) or are re-rounded to a fresh scale (the VGG's), so
no exact rounding tie (an average of 2^k grid values can land exactly on one) decides a value.
The same argument holds for the binarizations (threshold 0; the value thresholded is a
continuous float or an exact grid value). ATOL = 1e-4 leaves 1000x margin over what was measured, and is ~100x below the effect of one
flipped rounding step (scale ~1e-2 times a weight ~1e-1).
"""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from torch_threads import one_torch_thread  # noqa: E402,F401 - autouse
from tvm_deepchip import oracle  # noqa: E402
from tvm_deepchip.errors import InputError  # noqa: E402
from tvm_deepchip.train import export, prepare, qat, schemes  # noqa: E402
from tvm_deepchip.train.export_onnx import frozen  # noqa: E402

ATOL = 1e-4
STEPS = 3


class Block(nn.Module):
    def __init__(self, ci, co, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(ci, co, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(co)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(co, co, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(co)
        self.down = nn.Sequential(nn.Conv2d(ci, co, 1, stride=stride, bias=False), nn.BatchNorm2d(co)) \
            if stride != 1 or ci != co else None

    def forward(self, x):
        y = self.relu(self.bn1(self.conv1(x)))
        short = x if self.down is None else self.down(x)
        return F.relu(self.bn2(self.conv2(y)) + short)


class ResNetStyle(nn.Module):
    """9x9 input, a stem with ReLU6, an identity block and a downsampling block (5x5 map)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        self.act = nn.ReLU6()
        self.layer1 = Block(16, 16, 1)
        self.layer2 = Block(16, 32, 2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        x = self.layer2(self.layer1(self.act(self.bn(self.stem(x)))))
        return self.fc(torch.flatten(self.pool(x), 1))


class VGGStyle(nn.Module):
    """16x16 input: conv-BN-act-pool stages (ReLU, Hardtanh, ReLU + average pool), an MLP head."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.Hardtanh(), nn.MaxPool2d(2),
            nn.Conv2d(32, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(), nn.AvgPool2d(2))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(32 * 2 * 2, 32), nn.BatchNorm1d(32), nn.ReLU(),
                                        nn.Dropout(0.1), nn.Linear(32, 10))

    def forward(self, x):
        return self.classifier(self.features(x))


ARCHS = {"resnet": (ResNetStyle, 9), "vgg": (VGGStyle, 16)}


def _trained(arch, scheme, seed=0):
    cls, size = ARCHS[arch]
    torch.manual_seed(seed)
    model = prepare(cls(), scheme)
    x, y = torch.rand(16, 3, size, size), torch.randint(0, 10, (16,))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(STEPS):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        for _, m in qat.ternary_layers(model):
            m.clamp_scales()
    return model.eval(), torch.rand(8, 3, size, size)


def _inits(q):
    return {i.name: numpy_helper.to_array(i) for i in q.graph.initializer}


def _check_weights(q, model, scheme):
    info, w, prod = model.deepchip, _inits(q), {o: n for n in q.graph.node for o in n.output}
    ref = frozen(model)  # the trained forward weights, BatchNorm folded (what torch computes)
    layers = {n.name: n for n in q.graph.node if n.op_type in ("Conv", "Gemm")}
    assert list(layers) == info.layers
    for name, node in layers.items():
        d = prod.get(node.input[1])
        want = ref.get_submodule(name).weight.detach().numpy()
        if name in info.keep:
            assert d is not None and d.op_type == "DequantizeLinear", name
            q8, scale = w[d.input[0]], w[d.input[1]]
            assert q8.dtype == np.int8 and scale.shape == (q8.shape[0],) and not w[d.input[2]].any(), name
            continue
        got = w[node.input[1]]
        assert got.dtype == np.float32 and np.array_equal(got, want), name  # exactly what torch computed
        for c in range(got.shape[0]):
            vals = np.unique(got[c])
            if scheme == "ternary":
                assert len(vals) <= 3 and (vals < 0).sum() <= 1 and (vals > 0).sum() <= 1, (name, c, vals)
            else:
                assert len(vals) == 2 and vals[0] == -vals[1] != 0, (name, c, vals)
        if scheme == "ternary":
            assert (got == 0).any(), name
            latent = model.get_submodule(name).ternary_weight().detach().numpy()
            assert np.array_equal(got == 0, latent == 0), name


def _binarized_inputs(q, info):
    """Each binary layer reads Where(GreaterOrEqual(x, 0), 1, -1) (maybe through pooling/flatten)."""
    w, prod = _inits(q), {o: n for n in q.graph.node for o in n.output}
    wheres = []
    for node in q.graph.node:
        if node.op_type not in ("Conv", "Gemm") or node.name in info.keep:
            continue
        src = prod[node.input[0]]
        while src.op_type in ("MaxPool", "Flatten"):
            src = prod[src.input[0]]
        assert src.op_type == "Where", node.name
        ge = prod[src.input[0]]
        assert ge.op_type == "GreaterOrEqual" and w[ge.input[1]] == 0
        assert w[src.input[1]] == 1.0 and w[src.input[2]] == -1.0
        wheres.append(src.output[0])
    return wheres


@pytest.mark.parametrize("scheme", ["ternary", "bwn", "xnor"])
@pytest.mark.parametrize("arch", list(ARCHS))
def test_prepare_train_export_matches_torch(arch, scheme, tmp_path):
    model, x = _trained(arch, scheme)
    with torch.no_grad():
        ref = model(x).numpy()
    path = tmp_path / "m.onnx"
    q, report = export(model, x, path, calib=x.numpy())
    assert path.is_file()
    onnx.checker.check_model(q)
    _check_weights(q, model, scheme)
    wheres = _binarized_inputs(q, model.deepchip) if scheme == "xnor" else []
    assert not any(n.op_type in ("Sign", "BatchNormalization") for n in q.graph.node)
    probe = onnx.ModelProto()
    probe.CopyFrom(q)
    probe.graph.output.extend(helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, None) for t in wheres)
    outs = oracle.session(probe).run(None, {"input": x.numpy()})
    for t, v in zip(wheres, outs[1:]):
        assert set(np.unique(v)) <= {-1.0, 1.0}, t
    np.testing.assert_allclose(outs[0], ref, rtol=0, atol=ATOL)
    assert np.array_equal(outs[0].argmax(1), ref.argmax(1))


@pytest.mark.parametrize("scheme", ["ternary", "bwn", "xnor"])
def test_gradients_reach_latent_weights_and_scales(scheme):
    torch.manual_seed(0)
    model = prepare(ResNetStyle(), scheme).train()
    x, y = torch.rand(4, 3, 9, 9), torch.randint(0, 10, (4,))
    F.cross_entropy(model(x), y).backward()
    inner = [n for n in model.deepchip.layers if n not in model.deepchip.keep]
    assert inner and model.deepchip.keep == ["stem", "fc"]
    for name in inner:
        m = model.get_submodule(name)
        g = m.weight.grad
        assert g is not None and torch.isfinite(g).all() and (g != 0).float().mean() > 0.5, name
        if scheme == "ternary":
            assert float(m.wp.grad) != 0.0 and float(m.wn.grad) != 0.0, name
    for name in model.deepchip.keep:  # int8 layers learn through the straight-through round
        assert (model.get_submodule(name).weight.grad != 0).any(), name


def test_binary_quantizers_values_and_straight_through():
    w = torch.tensor([[0.5, -0.25, 0.0, 2.0], [-1.0, -3.0, 1.0, 0.0]], requires_grad=True)
    b = schemes.binary_weight(w)
    assert b.tolist() == [[0.6875, -0.6875, 0.6875, 0.6875], [-1.25, -1.25, 1.25, 1.25]]  # sign(0) = +1
    x = torch.tensor([-2.0, -0.5, 0.0, 0.5, 2.0], requires_grad=True)
    a = schemes.BinaryAct()(x)
    assert a.tolist() == [-1.0, -1.0, 1.0, 1.0, 1.0]
    a.sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]  # BNN: passed where |x| <= 1


def test_per_channel_ternary_scales():
    torch.manual_seed(0)
    model = prepare(VGGStyle(), "ternary", per_channel=True)
    m = model.get_submodule("features.4")
    assert m.wp.shape == (32, 1, 1, 1)
    model.train()
    F.cross_entropy(model(torch.rand(4, 3, 16, 16)), torch.tensor([0, 1, 2, 3])).backward()
    assert (m.wp.grad != 0).all() and (m.wn.grad != 0).all()


def test_keep_names_layers():
    model = prepare(VGGStyle(), "bwn", keep=["features.0", "features.4", "classifier.5"])
    assert isinstance(model.get_submodule("features.4"), schemes.Int8Conv2d)
    assert isinstance(model.get_submodule("features.8"), schemes.BinaryConv2d)


class _Sigmoid(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.gate, self.fc = nn.Conv2d(3, 4, 3), nn.Sigmoid(), nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.gate(self.conv(x)), 1), 1))


class _Grouped(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = nn.Conv2d(4, 8, 3), nn.Conv2d(8, 8, 3, groups=2), nn.Conv2d(8, 2, 1)

    def forward(self, x):
        return self.c(self.b(self.a(x)))


class _Twice(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b, self.fc = nn.Conv2d(3, 3, 3, padding=1), nn.Conv2d(3, 3, 3, padding=1), nn.Linear(3, 2)

    def forward(self, x):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.b(self.b(self.a(x))), 1), 1))


class _LooseBN(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.pool, self.bn, self.b = nn.Conv2d(3, 4, 3), nn.MaxPool2d(2), nn.BatchNorm2d(4), nn.Conv2d(4, 2, 1)

    def forward(self, x):
        return self.b(self.bn(self.pool(self.a(x))))


@pytest.mark.parametrize("make, scheme, kw, pattern", [
    (_Sigmoid, "ternary", {}, r"module 'gate' \(Sigmoid\) is not supported"),
    (VGGStyle, "binary", {}, r"scheme 'binary': expected one of ternary, bwn, xnor"),
    (VGGStyle, "bwn", {"keep": ["features.0", "features.99"]}, r"keep names \['features.99'\].*features.4"),
    (_Grouped, "xnor", {"keep": ["a", "c"]}, r"module 'b': grouped convolution \(groups=2\) under scheme 'xnor'"),
    (_LooseBN, "ternary", {}, r"BatchNorm 'bn' does not directly follow"),
    (_Twice, "bwn", {}, r"module\(s\) \['b'\] are called more than once"),
])
def test_bad_input_is_named(make, scheme, kw, pattern):
    with pytest.raises(InputError, match=pattern):
        prepare(make(), scheme, **kw)


def test_grouped_conv_is_fine_under_bwn_and_export_needs_prepare():
    prepare(_Grouped(), "bwn")
    with pytest.raises(InputError, match="does not come from tvm_deepchip.train.prepare"):
        export(VGGStyle(), torch.rand(1, 3, 16, 16))


def test_prepared_model_survives_deepcopy():
    import copy

    model = prepare(VGGStyle(), "xnor")
    again = copy.deepcopy(model)
    assert again.deepchip == model.deepchip and again.deepchip.keep == ["features.0", "classifier.5"]


def test_exported_ternary_model_compiles_to_deepchip_primitives(tmp_path):
    """The compiler reads the exported form: every layer of the ternary VGG lowers to a DeepChip
    primitive (int8 first/last, sparse ternary inside), and the compiled .so computes what the
    oracle computes (integer layers agree exactly with onnxruntime's QDQ semantics; measured
    1.5e-8 on the logits, float summation of the last layer's output)."""
    tvm = pytest.importorskip("tvm")
    from tvm import relax

    import tvm_deepchip

    model, x = _trained("vgg", "ternary")
    export(model, x[:1], tmp_path / "m.onnx", calib=x.numpy())
    compiled = tvm_deepchip.compile(str(tmp_path / "m.onnx"), "x86", output=str(tmp_path / "m.so"),
                                    input_shapes={"input": [1, 3, 16, 16]})
    rows = {r["layer"]: r for r in compiled.report.layers}
    assert list(rows) == model.deepchip.layers
    assert {n: r["kind"] for n, r in rows.items()} == {"features.0": "int8", "features.4": "ternary",
                                                      "features.8": "ternary", "classifier.1": "ternary",
                                                      "classifier.5": "int8"}
    assert all(r["primitive"] != "tvm-float" for r in rows.values())
    vm = relax.VirtualMachine(tvm.runtime.load_module(str(tmp_path / "m.so")), tvm.cpu())
    for i in range(2):
        got = vm["main"](tvm.runtime.tensor(x[i:i + 1].numpy())).numpy()
        np.testing.assert_allclose(got, oracle.run(str(tmp_path / "m.onnx"), x[i:i + 1].numpy()), rtol=0, atol=ATOL)
