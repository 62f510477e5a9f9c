"""DeepChip's training-time quantizer in torch.

Weights: trained ternary quantization (Zhu et al., "Trained Ternary Quantization", the scheme
DeepChip trains with). A latent float weight W is kept; the forward pass uses
    T = +Wp where W > delta,  -Wn where W < -delta,  0 elsewhere
with Wp, Wn learned per layer (nn.Parameters). delta is either t * max|W| (DeepChip's threshold,
t = 0.05 by default) or, when a target sparsity is given, the |W| quantile that zeroes that
fraction of the layer; `sparsity_schedule` ramps that target up during training (Zhu & Gupta's
cubic schedule) so the network adapts gradually instead of losing 90% of its weights at once.
Gradients are straight-through: dL/dWp sums the gradient over the +Wp positions, dL/dWn minus
the sum over the -Wn positions, and the latent W gets the gradient scaled by Wp / 1 / Wn in the
three regions (TTQ's rule).

Activations: clipped to [0, 1] and fake-quantized to 8 bits (uint8, scale 1/255, zero point 0)
with a straight-through round. First and last layers stay float here: the quantizer
(`tvm_deepchip.quantize`) makes them int8 per channel, which costs nothing measurable.

BatchNorm: a ternary conv is followed by BatchNorm while training. At export its scale
gamma/sqrt(var+eps) multiplies the ternary weights per output channel, so an output channel holds
{-Wn*s[c], 0, +Wp*s[c]}: still three values per channel (the per-channel ternary form the compiler
accepts), with exactly the same zeros; the BN shift goes into the bias. Folding never changes
which weights are zero, so the sparsity trained is the sparsity shipped. `unfold_conv_bn` is the
inverse: a folded conv back into conv + BatchNorm (to retrain from an exported model).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

ACT_LEVELS = 255  # uint8 activations, scale 1/255 over [0, 1]


class _Ternarize(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w, wp, wn, delta):
        pos = w > delta
        neg = w < -delta
        ctx.save_for_backward(pos, neg, wp, wn)
        return wp * pos.to(w.dtype) - wn * neg.to(w.dtype)

    @staticmethod
    def backward(ctx, g):
        pos, neg, wp, wn = ctx.saved_tensors
        # TTQ: the latent weight learns with the gradient scaled by its region's magnitude
        gw = torch.where(pos, wp * g, torch.where(neg, wn * g, g))
        # per layer (wp a scalar) or per output channel (wp [Co, 1, ...]): sum over the rest
        gwp = (g * pos).sum_to_size(wp.shape)
        gwn = -(g * neg).sum_to_size(wn.shape)
        return gw, gwp, gwn, None


class TTQWeight:
    """Trained ternary weights for a Conv2d / Linear subclass: the latent `weight` stays float,
    the forward pass uses {-Wn, 0, +Wp} with Wp, Wn learned per layer or (per_channel) per
    output channel."""

    def _init_ttq(self, t: float, per_channel: bool) -> None:
        self.t = t
        self.target_sparsity: float | None = None  # None: threshold t * max|W|
        shape = (self.weight.shape[0],) + (1,) * (self.weight.dim() - 1) if per_channel else ()
        self.wp = nn.Parameter(torch.ones(shape))
        self.wn = nn.Parameter(torch.ones(shape))

    def delta(self) -> torch.Tensor:
        a = self.weight.detach().abs().flatten()
        if self.target_sparsity is None:
            return self.t * a.max()
        k = int(math.ceil(self.target_sparsity * a.numel()))
        if k <= 0:
            return a.min() * 0 - 1  # below every |W|: nothing is zeroed
        return a.kthvalue(min(k, a.numel())).values

    @torch.no_grad()
    def init_scales(self) -> None:
        """Wp, Wn from the latent weights (mean magnitude of each region), as TTQ starts."""
        w, d = self.weight, self.delta()
        pos, neg = w[w > d], w[w < -d]
        self.wp.fill_(float(pos.mean()) if pos.numel() else float(w.abs().mean()))
        self.wn.fill_(float(-neg.mean()) if neg.numel() else float(w.abs().mean()))

    def ternary_weight(self) -> torch.Tensor:
        return _Ternarize.apply(self.weight, self.wp, self.wn, self.delta())

    def qweight(self) -> torch.Tensor:
        return self.ternary_weight()

    @torch.no_grad()
    def clamp_scales(self) -> None:
        # Wp, Wn are magnitudes: keep them positive so the three values stay distinct
        self.wp.clamp_(min=1e-4)
        self.wn.clamp_(min=1e-4)


class TernaryConv2d(TTQWeight, nn.Conv2d):
    """Conv2d whose forward weight is ternary {-Wn, 0, +Wp} (per layer or per output channel)."""

    def __init__(self, *args, t: float = 0.05, per_channel: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_ttq(t, per_channel)

    def forward(self, x):
        return self._conv_forward(x, self.ternary_weight(), self.bias)


class TernaryLinear(TTQWeight, nn.Linear):
    """Linear whose forward weight is ternary {-Wn, 0, +Wp} (per layer or per output channel)."""

    def __init__(self, *args, t: float = 0.05, per_channel: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_ttq(t, per_channel)

    def forward(self, x):
        return nn.functional.linear(x, self.ternary_weight(), self.bias)


class _RoundSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return torch.round(x)

    @staticmethod
    def backward(ctx, g):
        return g


class ClippedAct(nn.Module):
    """Clipped ReLU min(max(x, 0), 1); with `quant` the result is also rounded to k/255."""

    def __init__(self, quant: bool = False):
        super().__init__()
        self.quant = quant

    def forward(self, x):
        x = torch.clamp(x, 0.0, 1.0)
        if self.quant:
            x = _RoundSTE.apply(x * ACT_LEVELS) / ACT_LEVELS
        return x


def sparsity_schedule(step: int, ramp_steps: int, target: float) -> float:
    """Cubic ramp from 0 to `target` over `ramp_steps` (Zhu & Gupta 2017), then flat."""
    if ramp_steps <= 0 or step >= ramp_steps:
        return target
    return target * (1.0 - (1.0 - step / ramp_steps) ** 3)


def ternary_layers(model: nn.Module) -> list[tuple[str, TTQWeight]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, TTQWeight)]


def set_sparsity(model: nn.Module, sparsity: float | None) -> None:
    for _, m in ternary_layers(model):
        m.target_sparsity = sparsity


@torch.no_grad()
def layer_stats(model: nn.Module) -> dict[str, dict]:
    """Per ternary layer: zeros fraction, the distinct values, Wp, Wn and the effective t."""
    out = {}
    for name, m in ternary_layers(model):
        tw = m.ternary_weight()
        d = m.delta()
        out[name] = {
            "sparsity": float((tw == 0).float().mean()),
            "values": sorted(float(v) for v in torch.unique(tw)),
            "wp": m.wp.tolist(), "wn": m.wn.tolist(),
            "t": float(d / m.weight.abs().max()),
            "weights": int(tw.numel()),
        }
    return out


@torch.no_grad()
def fold_conv_bn(weight: torch.Tensor, bias: torch.Tensor | None, bn: nn.BatchNorm2d | None):
    """(W, b) of conv followed by eval-mode BN as float32 numpy, BN scale per output channel.

    Zero weights stay exactly zero (and +0.0, not -0.0, when the scale is negative)."""
    w = weight.detach().double()
    b = bias.detach().double() if bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
    if bn is not None:
        s = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
        b = (b - bn.running_mean.double()) * s + bn.bias.double()
        # scale in float32 from float32 values: one channel's equal weights give equal products
        wf = weight.detach().float() * s.float().reshape(-1, *([1] * (w.dim() - 1)))
    else:
        wf = weight.detach().float()
    wf = wf.numpy().astype(np.float32)
    wf[wf == 0] = 0.0
    return wf, b.float().numpy().astype(np.float32)


@torch.no_grad()
def unfold_conv_bn(wf: np.ndarray, b: np.ndarray, conv: nn.Conv2d, bn: nn.BatchNorm2d, x: torch.Tensor) -> None:
    """The inverse of `fold_conv_bn`: set `conv` (no bias) and `bn` so that eval-mode bn(conv(.))
    computes the folded conv (wf, b), where `x` is the layer's input on the training images.

    Each channel of wf is rescaled to the layer's RMS: folding scaled channels unequally, and the
    trainer's per-layer ternary threshold should see unfolded weights. BatchNorm's gamma/beta undo
    that rescaling exactly in eval mode; its running statistics are those of conv(x), so training
    mode (batch statistics of the training images) computes nearly the same function."""
    wf, b = np.asarray(wf, np.float64), np.asarray(b, np.float64)
    rms_c = np.sqrt((wf.reshape(len(wf), -1) ** 2).mean(1))
    r = np.where(rms_c > 0, rms_c / max(np.sqrt((wf ** 2).mean()), 1e-30), 1.0)
    conv.weight.copy_(torch.from_numpy(wf / r[:, None, None, None]).float())
    z = conv(x).double()  # z' = z / r per channel
    mu, var = z.mean((0, 2, 3)).numpy(), z.var((0, 2, 3), unbiased=False).numpy()
    bn.running_mean.copy_(torch.from_numpy(mu).float())
    bn.running_var.copy_(torch.from_numpy(var).float())
    bn.weight.copy_(torch.from_numpy(r * np.sqrt(var + bn.eps)).float())
    bn.bias.copy_(torch.from_numpy(r * mu + b).float())
