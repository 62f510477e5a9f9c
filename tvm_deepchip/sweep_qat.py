"""QAT sweep points for the bundled digits network: one ternary model trained per target sparsity.

Post-training ternarization of the FP32 digits net falls to chance accuracy at every threshold
(measured, see data/digits_train.json), so each point is trained with DeepChip's training-time
quantizer (`train.digits.train_ternary`) from the FP32 weights, exported, quantized (the ternary
weights are kept as trained) and measured like a PTQ point.

The FP32 starting point (`fp32_start`): the trainer is deterministic on one thread, so
"retrain" reruns its FP32 training (its default hyperparameters, ~35 s) and keeps the result only
if its export equals the given ONNX's weights (it does, bit for bit, for the shipped model): the
exact torch state, BatchNorm included. Otherwise, or with "onnx", `train.digits.fp32_from_onnx`
reads the model back from the ONNX (BatchNorm folded into the convs) as a `DigitsConvNet` whose
eval-mode output equals the ONNX model's (`train.qat.unfold_conv_bn`: each folded conv channel
rescaled to the layer's RMS, BatchNorm undoing that exactly in eval mode and, with the training
images' statistics, nearly so in training mode). Measured at 90% sparsity, 120 epochs: 98.22%
test accuracy from the retrained start, 97.56% from the read-back one.
"""
from __future__ import annotations

import contextlib

import numpy as np

from .errors import InputError, UnsupportedError
from .sweep_measure import measure, progress


@contextlib.contextmanager
def one_thread():
    """Train on one thread as the shipped models were (digits_train.json): torch's CPU kernels
    sum in another order with other thread counts, so only then does a rerun repeat bit for bit."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _require_torch():
    try:
        import torch  # noqa: F401
    except ImportError:
        raise UnsupportedError("qat mode needs PyTorch: pip install 'tvm-deepchip[train]'") from None


def retrain_fp32(model_path, data: dict, seed: int = 0, log=None):
    """The trainer's FP32 run again (train_both's hyperparameters); the net if its export has the
    same weights as `model_path` (max |diff| <= 1e-6 * max |w|), else None."""
    import inspect

    import torch
    from onnx import numpy_helper

    from . import onnx_io
    from .train import digits

    hp = {k: v.default for k, v in inspect.signature(digits.train_both).parameters.items()}
    torch.manual_seed(seed)
    net = digits.DigitsConvNet(ternary=False)
    with one_thread():
        digits.train(net, data["x_train"], data["y_train"], epochs=hp["fp32_epochs"], lr=hp["lr"], seed=seed)
    ours = {i.name: numpy_helper.to_array(i) for i in digits.to_onnx(net).graph.initializer}
    theirs = {i.name: numpy_helper.to_array(i) for i in onnx_io.load_model(model_path).graph.initializer}
    same = sorted(ours) == sorted(theirs) and all(
        ours[k].shape == theirs[k].shape
        and float(np.abs(ours[k] - theirs[k]).max(initial=0)) <= 1e-6 * max(float(np.abs(theirs[k]).max(initial=0)), 1e-30)
        for k in ours)
    if log:
        log(f"[sweep] qat: FP32 retrained (seed {seed}, {hp['fp32_epochs']} epochs): "
            + ("same weights as the ONNX, using it" if same else "differs from the ONNX, reading the ONNX back instead"))
    return net.eval() if same else None


def train_point(fp32, data: dict, sparsity: float, *, epochs=None, max_steps=None, seed=0):
    """A ternary DigitsConvNet trained from `fp32` to `sparsity` (the trainer's defaults unless
    epochs is given; max_steps: a short run, for smoke tests)."""
    from .train import digits

    if max_steps is None:
        kw = {} if epochs is None else {"epochs": epochs}
        return digits.train_ternary(fp32, data, sparsity=sparsity, seed=seed, **kw)
    tern = digits.DigitsConvNet(ternary=True)
    tern.load_state_dict(fp32.state_dict(), strict=False)
    digits.train(tern, data["x_train"], data["y_train"], epochs=epochs or 1, lr=1e-3, seed=seed + 1,
                 target_sparsity=sparsity, max_steps=max_steps)
    return tern


def qat_rows(model_path, x_calib, x, y, base, *, sparsities, epochs=None, max_steps=None, seed=0,
             fp32_start="auto", batch, runs, tuning_log="auto", log=None) -> list[dict]:
    """Train, export, quantize, compile and measure one row per target sparsity.

    fp32_start: "auto" (retrain, verified, else read back), "retrain" (must verify) or "onnx"."""
    _require_torch()
    import time

    from .quantizer import quantize
    from .train import digits

    if not sparsities:
        raise InputError("qat mode needs target sparsities (--sparsities 0.5,0.9,...)")
    if fp32_start not in ("auto", "retrain", "onnx"):
        raise InputError(f"fp32_start {fp32_start!r}: expected 'auto', 'retrain' or 'onnx'")
    data = digits.load_split(seed)
    fp32 = digits.fp32_from_onnx(model_path, data["x_train"])  # also checks it is the digits network
    start = "read back from the ONNX"
    if fp32_start != "onnx":
        again = retrain_fp32(model_path, data, seed, log)
        if again is None and fp32_start == "retrain":
            raise InputError(f"{model_path}: the trainer's FP32 run (seed {seed}) does not reproduce its weights; "
                             "use fp32_start='onnx' to start from the ONNX read back")
        fp32, start = (again, "retrained, verified equal") if again is not None else (fp32, start)
    if log:
        log(f"[sweep] qat: FP32 start {start}: torch accuracy {digits.accuracy(fp32, x, y):.4f} on the test images")
    rows = []
    for s in sparsities:
        t0 = time.time()
        with one_thread():
            tern = train_point(fp32, data, s, epochs=epochs, max_steps=max_steps, seed=seed)
        secs = time.time() - t0
        qmodel, qreport = quantize(digits.to_onnx(tern), calib=x_calib)
        row = measure(qmodel, qreport, x, y, base, batch=batch, runs=runs, tuning_log=tuning_log,
                      point=f"qat s={s:g}", mode="qat", sparsity_target=s, train_seconds=round(secs, 1),
                      fp32_start=start)
        progress(log, row)
        rows.append(row)
    return rows
