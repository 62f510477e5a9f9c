"""primitives/grouped_layout: the int8 conv's grouped flat layout copied by rows with an
interleave holds exactly te_flat's values (padding codes, channels past Ci, the zero tail, the
operand's shift), over channel counts that are not multiples of the group, paddings, row widths
of whole chunks, of a chunk and a rest, and of one position, batch 2 and each operand type; and
the int8 conv uses it only where it applies (stride 1, channel groups)."""
import numpy as np
import pytest
from primitive_cases import assert_same_layout, make_layer
from tvm import te

from tvm_deepchip.primitives import conv_layout, grouped_layout
from tvm_deepchip.primitives.conv_layout import te_flat

CASES = [  # (Ci, H, W, pad, input type, operand type)
    (6, 7, 9, 1, "uint8", "int8"),
    (48, 18, 18, 1, "uint8", "uint8"),
    (3, 40, 40, 0, "uint8", "uint8"),
    (5, 9, 7, 2, "int8", "uint8"),
    (8, 5, 5, 1, "uint8", "int16"),
    (1, 6, 6, 1, "int8", "int8"),
    (16, 4, 32, 1, "uint8", "uint8"),  # whole chunks of 16 positions only (ResNet-44's layer1)
    (4, 3, 17, 1, "uint8", "int16"),  # a chunk and a one-position rest
    (3, 4, 1, 1, "int8", "uint8"),  # one position a row
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "x".join(map(str, c[:4])) + f"-{c[4]}-{c[5]}")
def test_same_values_as_te_flat(case):
    ci, h, w, pad, in_dtype, operand = case
    group = 2 if operand == "int16" else 4
    rng = np.random.default_rng(ci * 100 + h)
    layer = make_layer(rng, "conv2d", "int8", (16, ci, 3, 3), pad=pad, in_dtype=in_dtype)
    geo = conv_layout.geometry(layer, (2, ci, h, w))
    assert grouped_layout.covers(geo, group)
    x = te.placeholder((2, ci, h, w), in_dtype, name="x")
    mine = grouped_layout.te_grouped(x, geo, layer.in_zero_point, group, operand)
    ref = te_flat(x, geo, layer.in_zero_point, name="ref", group=group, dtype=operand)
    assert_same_layout(x, mine, ref, rng, operand)


def test_only_stride_one_channel_groups():
    rng = np.random.default_rng(0)
    one = conv_layout.geometry(make_layer(rng, "conv2d", "int8", (8, 4, 3, 3), pad=1), (1, 4, 8, 8))
    two = conv_layout.geometry(make_layer(rng, "conv2d", "int8", (8, 4, 3, 3), stride=2, pad=1), (1, 4, 8, 8))
    assert grouped_layout.covers(one, 4) and grouped_layout.covers(one, 2)
    assert not grouped_layout.covers(two, 4)  # phase planes: te_flat
    assert not grouped_layout.covers(one, 1)
