"""DeepChip's SVHN ConvNet, adapted to scikit-learn's bundled 8x8 digits, trained FP32 and ternary.

Data: `sklearn.datasets.load_digits` (1,797 real 8x8 grey images, 16 grey levels, 10 classes; bundled
with scikit-learn, no download). Pixels are divided by 16 into [0, 1]; the split is a fixed
permutation from `seed`: 450 test, 100 calibration, the remaining 1,247 train.

Architecture: the same layer sequence and channel counts as DeepChip's SVHN ConvNet
    conv48 5x5 - maxpool - conv64 3x3 - conv64 3x3 - maxpool - conv128 3x3 (x3) - conv512 - fc10
each conv followed by BatchNorm and a clipped ReLU (min(max(x,0),1)). Adaptation to the 8x8x1 input
(the original reads 40x40x3 and shrinks its maps by valid convolutions):
  - every conv pads to keep its size ("same": 5x5 pad 2, 3x3 pad 1), so maps go 8 -> pool 4 -> pool 2;
  - the original conv512 covers the whole remaining map, acting as a fully connected layer; here
    the 2x2 map after the conv128s is max-pooled to 1x1 and conv512 is 1x1. This extra pool keeps
    conv512 at 65k weights instead of 262k (a 2x2 kernel), so the shipped ONNX files stay small;
  - input has 1 channel (grey) instead of 3.
Ternary layers are conv64, conv64, conv128 x3 and conv512 (the inner layers); conv48 (first) and fc10
(last) stay float in training and become int8 in the quantizer, as in the paper.

Training: Adam, cosine learning rate, random +-1 pixel shifts; the ternary net starts from the
trained FP32 weights (as TTQ does) and ramps its sparsity to the target (see `qat`).
`train_scheme` trains the FP32 net further in any scheme (ternary, bwn, xnor) through the generic
`prepare` / `export`, as any user model would be; the shipped ternary files still come from
`train_ternary` / `to_onnx` (the files the compiler tests read).
"""
from __future__ import annotations

import math
import time

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from .qat import (ClippedAct, TernaryConv2d, fold_conv_bn, set_sparsity, sparsity_schedule, ternary_layers,
                  unfold_conv_bn)

N_TEST, N_CALIB = 450, 100
# (name, in, out, kernel, pad) or "pool"
LAYERS = [("conv1", 1, 48, 5, 2), "pool", ("conv2", 48, 64, 3, 1), ("conv3", 64, 64, 3, 1), "pool",
          ("conv4", 64, 128, 3, 1), ("conv5", 128, 128, 3, 1), ("conv6", 128, 128, 3, 1), "pool",
          ("conv7", 128, 512, 1, 0)]
FC = ("fc", 512, 10)
FIRST = "conv1"


def load_split(seed: int = 0) -> dict[str, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.data.astype(np.float32) / 16.0).reshape(-1, 1, 8, 8)
    y = d.target.astype(np.int64)
    p = np.random.default_rng(seed).permutation(len(y))
    te, ca, tr = p[:N_TEST], p[N_TEST:N_TEST + N_CALIB], p[N_TEST + N_CALIB:]
    return {"x_train": x[tr], "y_train": y[tr], "x_calib": x[ca], "y_calib": y[ca],
            "x_test": x[te], "y_test": y[te]}


class DigitsConvNet(nn.Module):
    """FP32 (ternary=False) or QAT (ternary=True: inner convs ternary, activations 8-bit)."""

    def __init__(self, ternary: bool = False, t: float = 0.05, dropout: float = 0.1):
        super().__init__()
        self.ternary = ternary
        self.convs = nn.ModuleDict()
        self.bns = nn.ModuleDict()
        for spec in LAYERS:
            if spec == "pool":
                continue
            name, ci, co, k, p = spec
            if ternary and name != FIRST:
                self.convs[name] = TernaryConv2d(ci, co, k, padding=p, bias=False, t=t)
            else:
                self.convs[name] = nn.Conv2d(ci, co, k, padding=p, bias=False)
            self.bns[name] = nn.BatchNorm2d(co)
        self.act = ClippedAct(quant=ternary)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(FC[1], FC[2])

    def forward(self, x):
        if self.ternary:
            x = self.act(x)  # the input image is uint8-quantized too
        for spec in LAYERS:
            if spec == "pool":
                x = F.max_pool2d(x, 2)
            else:
                x = self.act(self.bns[spec[0]](self.convs[spec[0]](x)))
        return self.fc(self.drop(torch.flatten(x, 1)))


def _shift(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Each image moved by a random -1..+1 pixel in x and y (zero fill): cheap augmentation."""
    b = x.shape[0]
    xp = F.pad(x, (1, 1, 1, 1))
    oy = torch.randint(0, 3, (b,), generator=gen)
    ox = torch.randint(0, 3, (b,), generator=gen)
    ar = torch.arange(8)
    rows = (oy[:, None] + ar)[:, :, None]
    cols = (ox[:, None] + ar)[:, None, :]
    return xp[torch.arange(b)[:, None, None], 0, rows, cols][:, None]


def train(model: nn.Module, x: np.ndarray, y: np.ndarray, *, epochs: int, lr: float, seed: int,
          batch: int = 64, target_sparsity: float | None = None, ramp: float = 0.6,
          max_steps: int | None = None, log=None) -> list[float]:
    """Train in place; returns the mean loss of each epoch (or each step when max_steps is set).

    With target_sparsity, the ternary layers' sparsity ramps to it over the first `ramp` of the
    steps and stays there."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    steps_per_epoch = math.ceil(len(y) / batch)
    total = max_steps or epochs * steps_per_epoch
    scales = [p for n, p in model.named_parameters() if n.endswith((".wp", ".wn"))]
    rest = [p for n, p in model.named_parameters() if not n.endswith((".wp", ".wn"))]
    opt = torch.optim.Adam([{"params": rest, "weight_decay": 0.0 if model.ternary else 1e-4},
                            {"params": scales, "weight_decay": 0.0}], lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    if target_sparsity is not None:
        set_sparsity(model, sparsity_schedule(0, int(ramp * total), target_sparsity))
        for _, m in ternary_layers(model):
            m.init_scales()
    history, step = [], 0
    model.train()
    while step < total:
        perm = torch.randperm(len(yt), generator=gen)
        losses = []
        for i in range(0, len(perm), batch):
            if step >= total:
                break
            if target_sparsity is not None:
                set_sparsity(model, sparsity_schedule(step, int(ramp * total), target_sparsity))
            idx = perm[i:i + batch]
            loss = F.cross_entropy(model(_shift(xt[idx], gen)), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            for _, m in ternary_layers(model):
                m.clamp_scales()
            losses.append(loss.item())
            step += 1
            if max_steps:
                history.append(losses[-1])
        if not max_steps:
            history.append(float(np.mean(losses)))
            if log:
                log(f"epoch {len(history)}: loss {history[-1]:.4f}")
    if target_sparsity is not None:
        set_sparsity(model, target_sparsity)
    model.eval()
    return history


@torch.no_grad()
def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    model.eval()
    pred = model(torch.from_numpy(x)).argmax(1).numpy()
    return float((pred == y).mean())


@torch.no_grad()
def to_onnx(model: DigitsConvNet, opset: int = 17) -> onnx.ModelProto:
    """Standard float ONNX: Conv (BN folded) -> Clip(0,1) ... -> Flatten -> Gemm.

    For a ternary model every inner conv weight holds exactly {-Wn[c], 0, +Wp[c]} per output channel."""
    model.eval()
    inits = [numpy_helper.from_array(np.array(0.0, np.float32), "clip_lo"),
             numpy_helper.from_array(np.array(1.0, np.float32), "clip_hi")]
    nodes, cur, ternary = [], "input", []
    for i, spec in enumerate(LAYERS):
        if spec == "pool":
            nodes.append(helper.make_node("MaxPool", [cur], [f"pool{i}"], kernel_shape=[2, 2], strides=[2, 2]))
            cur = f"pool{i}"
            continue
        name, _, _, k, p = spec
        conv = model.convs[name]
        w = conv.ternary_weight() if isinstance(conv, TernaryConv2d) else conv.weight
        wf, b = fold_conv_bn(w, conv.bias, model.bns[name])
        if isinstance(conv, TernaryConv2d):
            ternary.append(name)
        inits += [numpy_helper.from_array(wf, f"{name}.weight"), numpy_helper.from_array(b, f"{name}.bias")]
        nodes.append(helper.make_node("Conv", [cur, f"{name}.weight", f"{name}.bias"], [f"{name}.out"],
                                      name=name, kernel_shape=[k, k], pads=[p] * 4, strides=[1, 1]))
        nodes.append(helper.make_node("Clip", [f"{name}.out", "clip_lo", "clip_hi"], [f"{name}.act"]))
        cur = f"{name}.act"
    nodes.append(helper.make_node("Flatten", [cur], ["flat"], axis=1))
    inits += [numpy_helper.from_array(model.fc.weight.numpy().astype(np.float32), "fc.weight"),
              numpy_helper.from_array(model.fc.bias.numpy().astype(np.float32), "fc.bias")]
    nodes.append(helper.make_node("Gemm", ["flat", "fc.weight", "fc.bias"], ["logits"], name="fc", transB=1))
    graph = helper.make_graph(
        nodes, "digits_svhn_convnet",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="tvm-deepchip")
    m.ir_version = 8
    helper.set_model_props(m, {"deepchip.ternary_layers": ",".join(ternary)})
    onnx.checker.check_model(m)
    return m


@torch.no_grad()
def fp32_from_onnx(model_path, x_train: np.ndarray) -> DigitsConvNet:
    """The inverse of `to_onnx` for the FP32 net: a DigitsConvNet equal, in eval mode, to the ONNX
    at `model_path` (BatchNorm un-folded with `x_train`'s statistics, see `qat.unfold_conv_bn`)."""
    from .. import onnx_io
    from ..errors import UnsupportedError

    inits = {i.name: numpy_helper.to_array(i) for i in onnx_io.load_model(model_path).graph.initializer}
    net = DigitsConvNet(ternary=False).eval()
    want = {f"{n}.weight": tuple(net.convs[n].weight.shape) for n in net.convs}
    want.update({f"{n}.bias": (net.convs[n].out_channels,) for n in net.convs})
    want.update({"fc.weight": tuple(net.fc.weight.shape), "fc.bias": tuple(net.fc.bias.shape)})
    bad = [k for k, shape in want.items() if k not in inits or tuple(inits[k].shape) != shape]
    if bad:
        raise UnsupportedError(f"{model_path}: qat mode trains the bundled digits network "
                               f"(tvm_deepchip/train/digits.py); initializers {bad} are missing or have "
                               "other shapes")
    x = torch.from_numpy(x_train.astype(np.float32))
    for spec in LAYERS:
        if spec == "pool":
            x = F.max_pool2d(x, 2)
            continue
        name = spec[0]
        conv, bn = net.convs[name], net.bns[name]
        unfold_conv_bn(inits[f"{name}.weight"], inits[f"{name}.bias"], conv, bn, x)
        x = net.act(bn(conv(x)))
    net.fc.weight.copy_(torch.from_numpy(np.array(inits["fc.weight"])))
    net.fc.bias.copy_(torch.from_numpy(np.array(inits["fc.bias"])))
    return net


def ternary_values_per_channel(w: np.ndarray) -> int:
    """Largest number of distinct values in one output channel (3 for a ternary layer)."""
    return max(len(np.unique(w[c])) for c in range(w.shape[0]))


def ort_accuracy(model: onnx.ModelProto | str, x: np.ndarray, y: np.ndarray) -> float:
    import onnxruntime as ort

    from ..oracle import LOSSY_REWRITES

    src = model if isinstance(model, str) else model.SerializeToString()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    # the oracle's semantics: the default WeightBiasQuantization rewrite re-quantizes a QDQ model's
    # float ternary/binary weights (measured: a retrained ternary digits model at 9% with it, 98% without)
    sess = ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"], disabled_optimizers=LOSSY_REWRITES)
    logits = sess.run(None, {sess.get_inputs()[0].name: x.astype(np.float32)})[0]
    return float((logits.argmax(1) == y).mean())


def train_ternary(fp32: DigitsConvNet, data: dict, *, sparsity: float = 0.9, epochs: int = 120,
                  lr: float = 1e-3, seed: int = 0, log=None) -> DigitsConvNet:
    """QAT from trained FP32 weights (as TTQ starts) to `sparsity` zeros in every ternary layer.
    One model per operating point: post-training ternarization of this net without retraining
    falls to chance accuracy (measured, see digits_train.json), so a sparsity sweep retrains."""
    tern = DigitsConvNet(ternary=True)
    tern.load_state_dict(fp32.state_dict(), strict=False)  # wp/wn are set by init_scales
    train(tern, data["x_train"], data["y_train"], epochs=epochs, lr=lr, seed=seed + 1,
          target_sparsity=sparsity, log=log)
    return tern


def train_scheme(fp32: DigitsConvNet, data: dict, scheme: str, *, sparsity: float = 0.9, epochs: int = 120,
                 lr: float = 1e-3, seed: int = 0, max_steps: int | None = None, log=None):
    """The FP32 net trained further in `scheme` ("ternary", "bwn", "xnor") through the generic
    `prepare` (conv1 and fc kept int8, as DeepChip, BNN and XNOR-Net keep their first and last
    layers); the ternary scheme ramps its sparsity to `sparsity`. Returns the prepared model."""
    from .prepare_model import prepare

    model = prepare(fp32.eval(), scheme)
    model.ternary = True  # train(): no weight decay on a quantized net, as the ternary QAT
    train(model, data["x_train"], data["y_train"], epochs=epochs, lr=lr, seed=seed + 1,
          target_sparsity=sparsity if scheme == "ternary" else None, max_steps=max_steps, log=log)
    return model


def train_both(seed: int = 0, *, fp32_epochs: int = 120, qat_epochs: int = 120, lr: float = 2e-3,
               qat_lr: float = 1e-3, target_sparsity: float = 0.9, log=print):
    """FP32 then ternary (initialised from FP32). Returns (fp32 model, ternary model, split, timings)."""
    data = load_split(seed)
    times = {}
    torch.manual_seed(seed)
    fp32 = DigitsConvNet(ternary=False)
    t0 = time.time()
    train(fp32, data["x_train"], data["y_train"], epochs=fp32_epochs, lr=lr, seed=seed, log=log)
    times["fp32_s"] = time.time() - t0
    t0 = time.time()
    tern = train_ternary(fp32, data, sparsity=target_sparsity, epochs=qat_epochs, lr=qat_lr, seed=seed, log=log)
    times["ternary_s"] = time.time() - t0
    return fp32, tern, data, times
