"""The weight and activation quantizers of the training schemes (torch), besides TTQ (`qat`).

Weights:
- binary (BinaryConnect / Binary-Weight-Networks, Courbariaux et al. 2015, Rastegari et al. 2016):
  forward sign(W) * a[c] with a[c] = mean |W[c]| per output channel (XNOR-Net's L1-optimal scale),
  sign(0) = +1 so a channel holds exactly two values; straight-through gradient clipped to
  |W| <= 1 (BinaryConnect's rule), and the gradient of a[c] flows back to W as XNOR-Net derives;
- int8 per output channel (the kept layers): symmetric, scale max|W[c]|/127, straight-through
  round: what the quantizer will write, so training sees the weights that ship.
Activations:
- `QuantAct`: clip to [lo, hi] and fake-quantize to 8 bits, uint8 (scale hi/255) when lo >= 0,
  else int8 (scale max(|lo|, |hi|)/127); zero point 0, rounding half to even as ONNX's
  QuantizeLinear does. A fixed range (ReLU6, Hardtanh, clipped ReLU) or one observed while
  training (running max, for ReLU and for the points with no activation); the export writes it
  as Clip(lo, hi), whose bounds become the QDQ pair's scale;
- `BinaryAct` (BNN, Hubara et al. 2016): +1 where x >= 0 else -1 (never 0), straight-through
  gradient clipped to |x| <= 1;
- `Requant`: after a global average pool, re-round to the scale of the QuantAct before it (the
  quantizer's pass-through pair does the same in ONNX).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .qat import _RoundSTE

UINT8_LEVELS, INT8_LEVELS = 255, 127
EMA = 0.1  # weight of a new batch in an observed range


def _channel_shape(w: torch.Tensor) -> tuple:
    return (w.shape[0],) + (1,) * (w.dim() - 1)


class _SignSTE(torch.autograd.Function):
    """+1 where x >= 0 else -1; gradient passed where |x| <= 1."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * (x.abs() <= 1).to(g.dtype)


def binary_weight(w: torch.Tensor) -> torch.Tensor:
    """sign(W) * mean|W[c]| per output channel: exactly {-a[c], +a[c]}."""
    a = w.abs().mean(dim=tuple(range(1, w.dim())), keepdim=True)
    return _SignSTE.apply(w) * a


def int8_weight(w: torch.Tensor) -> torch.Tensor:
    """Symmetric per-channel int8, as `ternary.int8_per_channel` writes it."""
    amax = w.detach().abs().amax(dim=tuple(range(1, w.dim())), keepdim=True)
    scale = torch.where(amax > 0, amax / INT8_LEVELS, torch.ones_like(amax))
    return torch.clamp(_RoundSTE.apply(w / scale), -INT8_LEVELS, INT8_LEVELS) * scale


class _QuantWeight:
    """A Conv2d / Linear subclass whose forward weight is `qweight()`."""

    quantize_weight = staticmethod(binary_weight)

    def qweight(self) -> torch.Tensor:
        return self.quantize_weight(self.weight)

    def forward(self, x):
        if isinstance(self, nn.Conv2d):
            return self._conv_forward(x, self.qweight(), self.bias)
        return F.linear(x, self.qweight(), self.bias)


class BinaryConv2d(_QuantWeight, nn.Conv2d):
    quantize_weight = staticmethod(binary_weight)


class BinaryLinear(_QuantWeight, nn.Linear):
    quantize_weight = staticmethod(binary_weight)


class Int8Conv2d(_QuantWeight, nn.Conv2d):
    quantize_weight = staticmethod(int8_weight)


class Int8Linear(_QuantWeight, nn.Linear):
    quantize_weight = staticmethod(int8_weight)


class QuantAct(nn.Module):
    """Clip to [lo, hi] and fake-quantize to 8 bits. `hi=None`: the range is observed (running
    max while training, the first batch seen otherwise); `signed=None`: decided by that first
    batch (uint8 if it holds no negative value, else int8 with a symmetric range)."""

    def __init__(self, lo: float | None = 0.0, hi: float | None = None):
        super().__init__()
        self.fixed = hi is not None
        self.register_buffer("lo", torch.tensor(0.0 if lo is None else float(lo)))
        self.register_buffer("hi", torch.tensor(0.0 if hi is None else float(hi)))
        self.register_buffer("observed", torch.tensor(self.fixed))
        self.signed_by_data = lo is None

    @torch.no_grad()
    def _observe(self, x: torch.Tensor) -> None:
        if self.signed_by_data and not bool(self.observed):
            if float(x.min()) < 0:
                self.lo.fill_(-1.0)  # marks signed; the magnitude follows hi below
            self.signed_by_data = bool(self.lo < 0)
        top = float(x.abs().max()) if bool(self.lo < 0) else float(x.max())
        top = max(top, 1e-6)
        new = top if not bool(self.observed) else (1 - EMA) * float(self.hi) + EMA * top
        self.hi.fill_(new)
        if bool(self.lo < 0):
            self.lo.fill_(-new)
        self.observed.fill_(True)

    def bounds(self) -> tuple[float, float]:
        """(lo, hi) as float32 values, the Clip bounds the export writes."""
        return float(self.lo.float()), float(self.hi.float())

    def scale(self) -> float:
        lo, hi = self.bounds()
        return max(abs(lo), abs(hi), 1e-6) / INT8_LEVELS if lo < 0 else max(hi, 1e-6) / UINT8_LEVELS

    def forward(self, x):
        if not self.fixed and (self.training or not bool(self.observed)):
            self._observe(x)
        lo, hi = self.bounds()
        s = torch.tensor(self.scale(), dtype=torch.float32).to(x.dtype)
        return _RoundSTE.apply(torch.clamp(x, lo, hi) / s) * s


class BinaryAct(nn.Module):
    """BNN's binary activation: exactly +1 or -1."""

    def forward(self, x):
        return _SignSTE.apply(x)


class Requant(nn.Module):
    """Round to the grid of `source` (a QuantAct) again, after an op that leaves it (average)."""

    def __init__(self, source: QuantAct):
        super().__init__()
        self.source = [source]  # a list: not a submodule, so not exported or trained twice

    def forward(self, x):
        src = self.source[0]
        lo, hi = src.bounds()
        s = torch.tensor(src.scale(), dtype=torch.float32).to(x.dtype)
        return _RoundSTE.apply(torch.clamp(x, lo, hi) / s) * s
