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
    # 2 bits a weight, and what the skipped padding taps add: 4 positions x 2 planes x 16 channels
    assert primitives.lower_layer(layer, (1, 8, 2, 2), "packed").weight_bytes == 16 * 72 // 4 + 4 * 2 * 16 * 4
    unpadded = make_layer(np.random.default_rng(0), "conv2d", "ternary", (16, 8, 3, 3))
    assert primitives.lower_layer(unpadded, (1, 8, 4, 4), "packed").weight_bytes == 16 * 72 // 4  # nothing skipped


@pytest.mark.parametrize("cls", all_classes())
def test_padding_taps_are_skipped_exactly(cls):
    """A 2x2 map under a 3x3 kernel with padding 1: 20 of the 36 (position, tap) products read
    padding and are skipped (packed_windows._live), their zero-point sums added per position
    instead; bit-exact for ternary and binary (bits) weights, codes of either type (the padding's
    code shifted into the operand), batch 2."""
    from tvm_deepchip.primitives import bit_dot

    geo = conv_layout.ConvGeometry.of((1, 8, 2, 2), (16, 8, 3, 3), (1, 1), (1, 1, 1, 1))
    taps = [(0, 0, ky, kx) for ky in range(3) for kx in range(3)]
    assert sum(packed_windows._live(geo, p, t) for p in range(4) for t in taps) == 16
    rng = np.random.default_rng(4)
    for kind, fmt, dt in (("ternary", Format.PACKED, "int8"), ("bwn", Format.BITS, "uint8"), ("bwn", Format.BITS, "int8")):
        layer = make_layer(rng, "conv2d", kind, (20, 12, 3, 3), pad=1, in_dtype=dt, out=dt, act="relu" if dt == "uint8" else None)
        lowered = primitives.lower_layer(layer, (2, 12, 2, 2), fmt, cls)
        assert lowered.consts[1].shape == (4, 1 if kind == "bwn" else len(bit_dot.PLANES), 32)  # PaddedWords.padded
        check(layer, (2, 12, 2, 2), fmt, rng, cls=cls)


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
