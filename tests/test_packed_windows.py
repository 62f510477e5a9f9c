"""packed_windows: a packed conv of few output positions as bit_dot's product over its windows;
bit-exact against its numpy reference on every ISA class (tests/primitive_cases.py), padding read
as the zero point at the windows' corners, strides, batches, codes of either type."""
import numpy as np
import pytest

from primitive_cases import _seeded, all_classes, check, make_layer, per_class
from tvm_deepchip import primitives
from tvm_deepchip.formats import Format
from tvm_deepchip.primitives import conv_layout, packed_windows

CASES = [  # (Co, Ci, k, stride, pad, H, W, in_dtype, out, act)
    (40, 24, 3, 1, 1, 2, 2, "uint8", "uint8", "relu"),  # 2x2 map, 3x3 kernel: 5 of 9 taps padding at a corner
    (20, 9, 3, 2, 1, 3, 4, "int8", "int8", None),  # strided: 2x2 outputs of a 3x4 map
    (33, 16, 5, 1, 2, 1, 1, "uint8", None, "clip"),  # one position, float output
    (130, 64, 3, 1, 1, 2, 1, "uint8", "uint8", "relu"),  # channels past a multiple of 16, a 2x1 map
]


def test_few_positions_run_as_windows():
    geo = lambda hw: conv_layout.ConvGeometry.of((1, 8, hw, hw), (16, 8, 3, 3), (1, 1), (1, 1, 1, 1))  # noqa: E731
    assert packed_windows.covers(geo(2)) and packed_windows.covers(geo(1)) and not packed_windows.covers(geo(3))
    layer = make_layer(np.random.default_rng(0), "conv2d", "ternary", (16, 8, 3, 3), pad=1)
    assert primitives.lower_layer(layer, (1, 8, 2, 2), "packed").weight_bytes == 16 * 72 // 4  # 2 bits a weight


@pytest.mark.parametrize("cls, case", per_class(CASES, [CASES[0], CASES[1]]))
def test_bit_exact(cls, case):
    co, ci, k, s, pad, h, w, dt, out, act = case
    rng = _seeded(case)
    layer = make_layer(rng, "conv2d", "ternary", (co, ci, k, k), stride=s, pad=pad, in_dtype=dt, out=out, act=act)
    check(layer, (1, ci, h, w), Format.PACKED, rng, cls=cls)


@pytest.mark.parametrize("cls", all_classes())
def test_saturated_input_and_batch(cls):
    rng = np.random.default_rng(1)
    layer = make_layer(rng, "conv2d", "ternary", (24, 16, 3, 3), pad=1, sparsity=0.3)
    check(layer, (3, 16, 2, 2), Format.PACKED, rng, saturated=True, cls=cls)
