"""dead_taps.crop: kernel rows and columns that read only padding are dropped, the padding shrunk by as
much; the layer's float semantics (what onnxruntime computes) are unchanged, and whole models agree."""
import numpy as np
import pytest

import primitive_cases as pc
from tvm_deepchip import dead_taps
from tvm_deepchip.layer import float_semantics


@pytest.mark.parametrize("args, span", [
    ((3, 1, 1, 1, 1), (1, 1)),  # a 3x3 'same' conv on a 1x1 map: the centre only
    ((5, 2, 2, 1, 1), (2, 2)),
    ((3, 1, 1, 2, 1), (0, 2)),  # a 2x2 map: every tap reads an input element at some output
    ((5, 2, 2, 2, 1), (1, 3)),
    ((3, 1, 1, 5, 2), (0, 2)),
    ((3, 2, 0, 1, 1), (2, 2)),  # asymmetric padding
    ((7, 3, 3, 2, 4), (3, 4)),  # stride 4 over a 2-wide input: one output, taps 3 and 4 read it
    ((3, 2, 2, 1, 2), (0, 2)),  # two outputs read the input through taps 2 and 0: tap 1 stays (inside)
])
def test_live_span(args, span):
    assert dead_taps.live_span(*args) == span


CASES = [  # (weight shape, stride, padding (t, l, b, r), input H, W): each has dead outer taps
    ((16, 8, 3, 3), 1, (1, 1, 1, 1), 1, 1),
    ((12, 5, 5, 5), 1, (2, 2, 2, 2), 1, 3),
    ((9, 4, 5, 3), 2, (2, 1, 2, 1), 2, 1),
    ((10, 6, 3, 3), 1, (2, 0, 1, 1), 1, 4),
]


@pytest.mark.parametrize("wshape, stride, pad, h, w", CASES)
@pytest.mark.parametrize("kind", ["ternary", "int8"])
def test_crop_keeps_the_layers_values(wshape, stride, pad, h, w, kind):
    rng = np.random.default_rng(len(wshape) + h * 7 + w)
    layer = pc.make_layer(rng, "conv2d", kind, wshape, stride=stride, sparsity=0.5)
    layer.padding = pad
    shape = (2, wshape[1], h, w)
    cropped = dead_taps.crop(layer, shape)
    assert cropped.codes.size < layer.codes.size
    assert "the other taps read only padding" in cropped.meta["note"]
    for _ in range(3):
        qx = pc.random_input(rng, layer.in_dtype, shape)
        np.testing.assert_array_equal(float_semantics(cropped, qx), float_semantics(layer, qx))
    assert dead_taps.crop(cropped, shape) is cropped  # nothing left to crop


def test_layers_without_dead_taps_are_returned_as_they_are():
    rng = np.random.default_rng(0)
    conv = pc.make_layer(rng, "conv2d", "ternary", (8, 4, 3, 3), pad=1)
    assert dead_taps.crop(conv, (1, 4, 6, 6)) is conv  # every tap reads the image at some output
    unpadded = pc.make_layer(rng, "conv2d", "ternary", (8, 4, 3, 3))
    assert dead_taps.crop(unpadded, (1, 4, 3, 3)) is unpadded
    dense = pc.make_layer(rng, "dense", "ternary", (8, 40))
    assert dead_taps.crop(dense, (1, 40)) is dense
