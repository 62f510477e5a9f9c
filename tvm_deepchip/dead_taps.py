"""Kernel taps that read only padding, cropped from a convolution before it is lowered.

ONNX pads a convolution's input with (float) zeros, so a kernel row or column that lies in the
padding at every output position adds nothing: the conv with that row or column removed and its
padding shrunk by as much has the same value everywhere, in float and in the integers the kernels
compute (a padded tap reads the input zero point, which stands for 0; an XNOR layer leaves padded
taps out). Small inputs make such taps common: SVHN ConvNet on 8x8 images (models.svhn_convnet
with in_hw=8, whose 'valid' convs fall back to 'same' padding) runs its 3x3 and 5x5 convs on 1x1
maps padded to the kernel, where every tap but the centre reads padding: 8 of 9 (24 of 25) of
their weights would be stored, decoded and added to zeros on every call.

Only outer rows and columns are cropped (the kernel stays a rectangle); a dead tap between live
ones (a stride larger than the input) stays and reads padding as before.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from .layer import QuantLayer


def live_span(kernel: int, pad_lo: int, pad_hi: int, size: int, stride: int) -> tuple[int, int]:
    """The first and last kernel offset along one axis that reads an input element (not padding)
    at some output position: input index y * stride + k - pad_lo in [0, size)."""
    out = (size + pad_lo + pad_hi - kernel) // stride + 1
    reads = np.arange(out)[:, None] * stride + np.arange(kernel)[None, :] - pad_lo
    live = np.flatnonzero(((reads >= 0) & (reads < size)).any(axis=0))
    return int(live[0]), int(live[-1])


def crop(layer: QuantLayer, in_shape: tuple) -> QuantLayer:
    """`layer` without the kernel rows and columns that read only padding on input `in_shape`
    (NCHW); the layer itself where there are none (dense layers, unpadded convs)."""
    if layer.op != "conv2d" or not any(layer.padding):
        return layer
    _, _, kh, kw = layer.codes.shape
    top, left, bottom, right = layer.padding
    (y0, y1) = live_span(kh, top, bottom, in_shape[2], layer.strides[0])
    (x0, x1) = live_span(kw, left, right, in_shape[3], layer.strides[1])
    if (y0, y1, x0, x1) == (0, kh - 1, 0, kw - 1):
        return layer
    codes = np.ascontiguousarray(layer.codes[:, :, y0:y1 + 1, x0:x1 + 1])
    note = (f"kernel {kh}x{kw} -> {y1 - y0 + 1}x{x1 - x0 + 1} on its {in_shape[2]}x{in_shape[3]} input: "
            f"the other taps read only padding")
    notes = "; ".join(n for n in (layer.meta.get("note"), note) if n)
    return dataclasses.replace(
        layer, codes=codes, padding=(top - y0, left - x0, bottom - (kh - 1 - y1), right - (kw - 1 - x1)),
        meta={**layer.meta, "note": notes})
