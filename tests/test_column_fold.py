"""primitives/column_fold: the folded layout holds exactly te_flat's layout of the folded input
x'[kx*Ci + c, y, ox] = xpad[c, y, ox * sw + kx] (padding codes, folded channels past Ci*KW,
vertical phases, the zero tail, the operand's shift), over channel counts, paddings, strides
down and across, batch 2 and each operand type; the fold is taken only where it saves dot
products, and its weights unfold to the layer's. (The int8 convs that read it:
tests/test_int8_conv2d.py.)"""
from dataclasses import replace

import numpy as np
import pytest
from primitive_cases import assert_same_layout, make_layer
from tvm import te, tirx

from tvm_deepchip.primitives import column_fold, conv_layout
from tvm_deepchip.primitives.conv_layout import te_flat

CASES = [  # (Ci, H, W, K, strides (down, across), pad, input type, operand type)
    (3, 12, 12, 5, (1, 1), 0, "uint8", "uint8"),
    (3, 9, 11, 5, (1, 1), 2, "uint8", "int8"),
    (1, 8, 8, 5, (1, 1), 2, "int8", "uint8"),
    (3, 11, 7, 3, (2, 1), 1, "uint8", "int16"),
    (1, 10, 9, 4, (3, 1), 1, "uint8", "uint8"),
    (3, 27, 27, 11, (4, 4), 0, "uint8", "int16"),  # AlexNet's conv1 form: the last columns' pixels unread
    (3, 13, 14, 5, (2, 3), 2, "uint8", "uint8"),  # padding on both sides of a strided row
    (2, 9, 10, 3, (1, 2), 1, "int8", "int8"),
    (3, 13, 75, 11, (4, 4), 2, "uint8", "uint8"),  # whole 16-column chunks of strided words, both ways
    (3, 6, 40, 3, (1, 2), 0, "int8", "int16"),
]


def _folded_input(x, geo: conv_layout.ConvGeometry, zp: int):
    """x' as a TE compute: the reference the layout is compared with."""
    left = geo.pad[1]

    def f(n, s, y, ox):
        kx, c = s // geo.ci, s % geo.ci
        xx = ox * geo.sw + kx - left
        inside = tirx.all(xx >= 0, xx < geo.w)
        return tirx.if_then_else(inside, x[n, c, y, tirx.max(tirx.min(xx, geo.w - 1), 0)], tirx.const(zp, x.dtype))

    return te.compute((geo.n, geo.ci * geo.kw, geo.h, geo.wo), f, name="xfold")


@pytest.mark.parametrize("case", CASES, ids=lambda c: "x".join(map(str, c[:4] + c[4] + c[5:6])) + f"-{c[6]}-{c[7]}")
def test_same_values_as_te_flat_of_the_folded_input(case):
    ci, h, w, k, strides, pad, in_dtype, operand = case
    group = 2 if operand == "int16" else 4
    rng = np.random.default_rng(ci * 100 + h)
    layer = make_layer(rng, "conv2d", "int8", (8, ci, k, k), pad=pad, in_dtype=in_dtype)
    layer.strides = strides
    geo = conv_layout.geometry(layer, (2, ci, h, w))
    fold = column_fold.folded(geo, group)
    assert fold is not None and fold.ci == ci * k and fold.kw == 1 and (fold.sh, fold.sw) == (strides[0], 1)
    assert fold.w == geo.wo
    x = te.placeholder((2, ci, h, w), in_dtype, name="x")
    mine = column_fold.te_layout(x, geo, layer.in_zero_point, group, operand)
    ref = te_flat(_folded_input(x, geo, layer.in_zero_point), fold, layer.in_zero_point, name="ref", group=group, dtype=operand)
    assert_same_layout(x, mine, ref, rng, operand)


def test_taken_only_where_it_saves_dot_products():
    """Folded where a tenth of the steps or more go (3 channels in groups of 4 over a 5x5
    kernel, one channel; strided across, where the fold also drops the horizontal phases:
    AlexNet's conv1, 68% of the steps in int16 pairs); kept for channels that fill their groups
    (even where the border columns alone would save a tenth: ResNet's 16x16 32-channel convs),
    ResNet's 3x3 RGB conv with 4-byte groups (9 steps either way) and a subsampled input; the
    fold's weights unfold to the layer's."""
    from tvm_deepchip.primitives.conv_layout import ConvGeometry

    def geo(ci, k, stride=1, pad=0, hw=40):
        return ConvGeometry.of((1, ci, hw, hw), (16, ci, k, k), (stride, stride), (pad,) * 4)

    assert column_fold.folded(geo(3, 5), 4).ci == 15 and column_fold.folded(geo(3, 5), 4).kw == 1
    assert column_fold.folded(geo(3, 3, pad=1, hw=32), 2) is not None  # 2-code groups: 5 steps a row, not 6
    assert column_fold.folded(geo(1, 5), 4) is not None
    assert column_fold.folded(geo(3, 5, stride=2), 4) is not None
    alexnet = column_fold.folded(geo(3, 11, stride=4, hw=227), 2)
    assert (alexnet.ci, alexnet.kw, alexnet.sw, alexnet.w, alexnet.sh) == (33, 1, 1, 55, 4)
    sub = replace(geo(3, 5), step=2)
    for g, group in ((geo(8, 3), 4), (geo(32, 3, pad=1, hw=16), 4), (geo(48, 3, pad=1, hw=18), 2),
                     (geo(3, 3, pad=1, hw=32), 4), (sub, 4)):
        assert column_fold.folded(g, group) is None, (g, group)
    w = np.random.default_rng(0).integers(-128, 128, (16, 3, 5, 4))
    g = ConvGeometry.of((1, 3, 9, 9), w.shape, (1, 1), (0, 0, 0, 0))
    np.testing.assert_array_equal(column_fold.unfold_kernel(column_fold.fold_kernel(w), g), w)
