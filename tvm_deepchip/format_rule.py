"""The default kernel format of a ternary layer, from its shape: the delta lists where their walk
pays for its decode, the index rows elsewhere.

A delta list is decoded once per walk (a prefix sum of its gaps, then tap offsets: about one
vector op an entry) and then read once per step of output positions; index rows need no decode.
So where a list is walked over few positions, or the layer's rows are small enough to stay in
cache, the rows are faster, and where a layer's lists are walked over many positions or its
weights stream through the caches, the delta lists, at a third of the bytes, are as fast or
faster. Measured whole-model, 2 threads, both formats taking turns (Intel Xeon, AVX-512 and AVX2
builds; docs/format_ab): the bundled digits model (4x4 and smaller maps) 0.81-0.92x the rows with
every layer in delta, the MLP's 512x512 layer 0.82-0.89x; SVHN ConvNet, ResNet-44 and AlexNet
0.93-1.17x, within the machine's run-to-run spread of the rows. A measured choice
(format_choice.py, formats.json) or --format overrides this rule, layer by layer.
"""
from __future__ import annotations

import numpy as np

from .formats import Format
from .primitives import conv_layout, ternary_conv2d_delta

# A spatial walk over fewer positions than this (one int16 AVX-512 vector) does about as many
# decode ops as adds: the digits model's 4x4 maps (24 positions with their border columns) ran at
# 0.76-0.79x the rows per layer; SVHN ConvNet's 5x5 conv6 (35) at 0.98x.
SPATIAL_MIN_POSITIONS = 32
# A one-position walk (dense layers, convs whose kernel covers the input) adds one scalar per
# entry, a uop more than the rows' per tap; it wins only when the rows would not stay in cache
# between runs: SVHN ConvNet's 5x5 conv7 (rows 469 KB) and AlexNet's fc layers (3.4-7.5 MB), not
# the MLP's 512x512 layer (52 KB) or LeNet's fc1.
POINTWISE_MIN_ROW_BYTES = 256 * 1024
ROW_BYTES_PER_TAP = 2  # uint16 index rows (before their padding and row tables)


def default_ternary(layer, in_shape) -> Format:
    """Format.DELTA or Format.SPARSE for ternary `layer` on input `in_shape`."""
    if layer.op == "conv2d":
        positions = ternary_conv2d_delta.walked_positions(conv_layout.geometry(layer, in_shape))
        if positions > 1:
            return Format.DELTA if positions >= SPATIAL_MIN_POSITIONS else Format.SPARSE
    row_bytes = ROW_BYTES_PER_TAP * int(np.count_nonzero(layer.codes))
    return Format.DELTA if row_bytes >= POINTWISE_MIN_ROW_BYTES else Format.SPARSE
