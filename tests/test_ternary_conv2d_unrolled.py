"""ternary_conv2d_unrolled: bit-exact against its numpy reference over the fuzzed shapes of every
conv primitive (tests/primitive_cases.py), on every ISA class, and over the corners of a kernel
generated from its weights: a channel with no non-zero weight, one with every weight non-zero (an
int32 accumulator), channel counts that are not a multiple of the group, and rows (non-flat)."""
import numpy as np
import pytest

from primitive_cases import CONV_CASES, all_classes, check, conv_suite, make_layer
from tvm_deepchip import isa, primitives
from tvm_deepchip.errors import InputError
from tvm_deepchip.primitives import conv_layout, ternary_conv2d_unrolled

# the 128x128x5x5 case (41 K non-zero weights) is above the form's limit: test_refuses_large_layers
SMALL_CASES = [c for c in CONV_CASES if 0.1 * c[0] * c[1] * c[2] ** 2 <= ternary_conv2d_unrolled.MAX_WEIGHTS]
test_bit_exact, test_saturated_input_and_batch, test_tuned_schedule_bit_exact = conv_suite(
    "unrolled", "ternary", SMALL_CASES)


def test_refuses_large_layers():
    """One instruction per non-zero weight: a layer above MAX_WEIGHTS is refused with its name and
    count, and the format is not offered for it."""
    rng = np.random.default_rng(2)
    layer = make_layer(rng, "conv2d", "ternary", (128, 128, 5, 5), sparsity=0.9)
    assert len(SMALL_CASES) == len(CONV_CASES) - 1
    assert "unrolled" not in primitives.formats_for(layer)
    with pytest.raises(InputError, match=r"conv2d_ternary.*non-zero weights"):
        primitives.lower_layer(layer, (1, 128, 5, 5), "unrolled")


@pytest.mark.parametrize("cls", all_classes())
def test_extreme_channels_and_a_partial_group(cls):
    """11 channels (groups of 8 and 4 leave a partial one), channel 3 all zero, channels 5 and 6
    all +1 and all -1 over 16x3x3 taps (144 taps a sign: int32 accumulators), saturated inputs
    (float outputs show any wrap)."""
    rng = np.random.default_rng(3)
    layer = make_layer(rng, "conv2d", "ternary", (11, 16, 3, 3), sparsity=0.9, pad=1, out=None, act=None)
    layer.codes[3] = 0
    layer.codes[5], layer.codes[6] = 1, -1
    w = ternary_conv2d_unrolled.pack(layer, conv_layout.geometry(layer, (1, 16, 7, 7)))
    assert w.longest() > conv_layout.int16_taps("uint8")
    check(layer, (1, 16, 7, 7), "unrolled", rng, saturated=True, cls=cls)


@pytest.mark.parametrize("cls", all_classes())
def test_rows_and_one_position(cls):
    """Outputs in rows (3 valid columns of 30: flat positions would waste most of the work) and a
    single position (kernel covering the input), batch 2."""
    rng = np.random.default_rng(5)
    wide = make_layer(rng, "conv2d", "ternary", (8, 4, 3, 28), sparsity=0.8)
    assert not conv_layout.geometry(wide, (2, 4, 12, 30)).flat
    check(wide, (2, 4, 12, 30), "unrolled", rng, cls=cls)
    check(make_layer(rng, "conv2d", "ternary", (8, 8, 3, 3), sparsity=0.8), (2, 8, 3, 3), "unrolled", rng, cls=cls)


def test_columns_share_one_load_per_group():
    """A column (input channel and tap) appears once per channel group, listing the group's
    +1 and -1 channels there; columns with no non-zero in the group are left out."""
    rng = np.random.default_rng(9)
    layer = make_layer(rng, "conv2d", "ternary", (12, 4, 3, 3), sparsity=0.85, pad=1)
    geo = conv_layout.geometry(layer, (1, 4, 6, 6))
    w = ternary_conv2d_unrolled.pack(layer, geo)
    group = ternary_conv2d_unrolled.group_of(isa.get("x86-avx512-vnni"))
    assert group == 8 and ternary_conv2d_unrolled.group_of(isa.get("x86-avx2")) == 4
    codes = layer.codes.reshape(12, -1)
    offsets = geo.tap_offsets().reshape(-1)
    for lo in (0, 8):
        cols = w.columns(lo, group)
        assert [o for o, _, _ in cols] == sorted(o for o, _, _ in cols)
        seen = {}
        for off, plus, minus in cols:
            (t,) = np.flatnonzero(offsets == off)
            assert plus == [c for c in range(lo, min(lo + group, 12)) if codes[c, t] > 0]
            assert minus == [c for c in range(lo, min(lo + group, 12)) if codes[c, t] < 0]
            assert plus or minus
            seen[t] = True
        nonempty = np.flatnonzero(np.any(codes[lo:lo + group] != 0, axis=0))
        assert sorted(seen) == sorted(nonempty.tolist())
