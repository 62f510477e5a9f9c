"""What one quantized layer computes: the contract between graph passes and primitives.

A pass that recognizes `dequantize -> conv2d/dense -> bias -> relu/clip -> quantize` builds a
`QuantLayer` (plain numpy, no TVM); a primitive builds the integer kernel for it. The float
semantics below are what onnxruntime computes for the same QDQ model; the primitives compute
the same thing in integers (accumulate, then one fixed-point requantization step).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class OutQuant:
    """Output quantization: q = saturate(round(y / scale) + zero_point) in `dtype`."""

    scale: float
    zero_point: int
    dtype: str  # "uint8" or "int8"


BINARY = "binary"  # QuantLayer.in_dtype of an XNOR layer: its input is +-1 (the kernel reads it bit-packed)


@dataclass
class OutBinary:
    """Output binarized for the next XNOR layer: +1 where clip(y) >= tau[c], else -1."""

    tau: np.ndarray  # float32 [Co]


@dataclass
class QuantLayer:
    """One convolution or dense layer with 8-bit input and ternary or int8 weights.

    Weights:
      `codes` int8, the integer code of each weight:
      weight_kind == "ternary": codes in {-1, 0, +1}; real weight = wp[c] where +1,
        -wn[c] where -1 (wp, wn float32 [Co]; a per-layer pair is repeated per channel).
      weight_kind == "int8": codes are the int8 weight values; real weight = w_scale[c] * code.
      weight_kind == "binary": codes in {-1, +1}; real weight = w_scale[c] * code (BinaryConnect/BWN,
        XNOR-Net). With in_dtype BINARY the input is +-1 too (scale 1, zero point 0).
    Shapes: conv2d [Co, Ci, KH, KW] (NCHW activations); dense [Co, K] (input [N, K]).
    """

    name: str
    op: str  # "conv2d" or "dense"
    weight_kind: str  # "ternary" or "int8"
    codes: np.ndarray
    bias: np.ndarray  # float32 [Co]
    in_scale: float
    in_zero_point: int
    in_dtype: str  # "uint8" or "int8"
    wp: np.ndarray | None = None
    wn: np.ndarray | None = None
    w_scale: np.ndarray | None = None
    strides: tuple = (1, 1)
    padding: tuple = (0, 0, 0, 0)  # top, left, bottom, right
    act_lo: float = -np.inf  # relu: 0; clip(0, c): 0 and c
    act_hi: float = np.inf
    out: OutQuant | OutBinary | None = None  # None: float32 output (last layer)
    meta: dict = field(default_factory=dict)

    @property
    def out_channels(self) -> int:
        return int(self.codes.shape[0])

    def real_weight(self) -> np.ndarray:
        """The float weight the ONNX model holds (for references and reports)."""
        shape = (-1,) + (1,) * (self.codes.ndim - 1)
        s = self.codes.astype(np.float32)
        if self.weight_kind == "ternary":
            return np.where(s > 0, self.wp.reshape(shape), 0) - np.where(s < 0, self.wn.reshape(shape), 0)
        return s * self.w_scale.reshape(shape)


def float_conv2d_nchw(x: np.ndarray, w: np.ndarray, strides, padding) -> np.ndarray:
    """Plain float NCHW convolution (im2col), used only as a semantic reference."""
    n, c, h, wd = x.shape
    co, ci, kh, kw = w.shape
    top, left, bottom, right = padding
    xp = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    sh, sw = strides
    ho = (h + top + bottom - kh) // sh + 1
    wo = (wd + left + right - kw) // sw + 1
    cols = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]
    cols = cols[:, :, :ho, :wo]  # n, c, ho, wo, kh, kw
    return np.einsum("nchwij,ocij->nohw", cols, w, optimize=True)


def float_semantics(layer: QuantLayer, qx: np.ndarray) -> np.ndarray:
    """What the QDQ ONNX model computes for this layer, in float64, from the quantized input.

    Returns the quantized output (if layer.out) or the float output.
    """
    x = (qx.astype(np.float64) - layer.in_zero_point) * layer.in_scale
    w = layer.real_weight().astype(np.float64)
    if layer.op == "conv2d":
        y = float_conv2d_nchw(x, w, layer.strides, layer.padding)
        y = y + layer.bias.astype(np.float64).reshape(1, -1, 1, 1)
    else:
        y = x @ w.T + layer.bias.astype(np.float64)
    y = np.clip(y, layer.act_lo, layer.act_hi)
    if layer.out is None:
        return y.astype(np.float32)
    if isinstance(layer.out, OutBinary):
        tau = np.asarray(layer.out.tau, np.float64).reshape((1, -1) + (1,) * (y.ndim - 2))  # per channel (axis 1)
        return np.where(y >= tau, 1, -1).astype(np.int8)
    info = np.iinfo(layer.out.dtype)
    q = np.round(y / layer.out.scale) + layer.out.zero_point
    return np.clip(q, info.min, info.max).astype(layer.out.dtype)
