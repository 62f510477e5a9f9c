"""Binary-weight layers (BWN: weights {-a_c, +a_c}) in the bits format: one bit a weight, expanded
to +-1 bytes for the int8 dot product (primitives/bwn_dense, bwn_conv2d over bit_dot). Bit-exact
against the numpy reference on every ISA class over fuzzed shapes; the default picks the form
only where a word expands in one instruction; bad requests refused by name."""
import numpy as np
import pytest

from primitive_cases import _seeded, all_classes, check, dense_suite, make_layer, per_class
from tvm_deepchip import isa, primitives
from tvm_deepchip.errors import InputError
from tvm_deepchip.format_rule import default_int8
from tvm_deepchip.formats import Format
from tvm_deepchip.planner import LayerChoices, choose_format
from tvm_deepchip.primitives import bit_dot, bwn_conv2d

test_dense_bit_exact, test_dense_saturated_input, test_dense_tuned_schedule_bit_exact = dense_suite("bits", "bwn")

CONV_CASES = [  # (Co, Ci, k, stride, pad, H, W, in_dtype, out, act): at most 64 positions an image
    (40, 24, 3, 1, 1, 5, 5, "uint8", "uint8", "relu"),  # 25 positions, padding at every border
    (20, 9, 3, 1, 1, 7, 8, "int8", "int8", None),  # 56 positions; channels not a multiple of 4; int8 shifted to uint8
    (33, 16, 5, 1, 0, 5, 5, "uint8", None, "clip"),  # one position, float output
    (130, 64, 3, 1, 0, 7, 7, "uint8", "uint8", "relu"),  # channels past a multiple of 16
    (17, 5, 2, 2, 0, 9, 8, "uint8", "uint8", "relu"),  # stride 2 dividing the kernel: 4x4 positions
    (12, 6, 1, 1, 0, 8, 8, "int8", "uint8", "clip"),  # 1x1 kernel, 64 positions
]


@pytest.mark.parametrize("cls, case", per_class(CONV_CASES, [CONV_CASES[0], CONV_CASES[1], CONV_CASES[2]]))
def test_conv_bit_exact(cls, case):
    co, ci, k, s, pad, h, w, dt, out, act = case
    rng = _seeded(case)
    layer = make_layer(rng, "conv2d", "bwn", (co, ci, k, k), stride=s, pad=pad, in_dtype=dt, out=out, act=act)
    check(layer, (1, ci, h, w), Format.BITS, rng, cls=cls)


@pytest.mark.parametrize("cls", all_classes())
def test_conv_saturated_input_and_batch(cls):
    rng = np.random.default_rng(1)
    layer = make_layer(rng, "conv2d", "bwn", (24, 16, 3, 3), pad=1)
    check(layer, (3, 16, 4, 4), Format.BITS, rng, saturated=True, cls=cls)


def test_one_bit_a_weight():
    rng = np.random.default_rng(2)
    layer = make_layer(rng, "conv2d", "bwn", (48, 40, 3, 3), pad=1)
    lowered = primitives.lower_layer(layer, (1, 40, 4, 4), "bits")
    assert lowered.weight_bytes == 48 * 40 * 9 // 8  # 16 channels x 4 taps a uint64 word, no padding here
    words = bit_dot.pack(layer.codes.reshape(48, -1), "uint8", bit_dot.BINARY_PLANES)
    np.testing.assert_array_equal(bit_dot.unpack(words, 48, 360), layer.codes.reshape(48, -1))


def test_default_where_a_word_expands_in_one_instruction():
    rng = np.random.default_rng(3)
    small = make_layer(rng, "conv2d", "bwn", (64, 32, 3, 3), pad=0)  # 5x5 positions of a 7x7 map
    big = make_layer(rng, "conv2d", "bwn", (64, 32, 3, 3), pad=1)  # 18x18 positions
    int8 = make_layer(rng, "conv2d", "int8", (64, 32, 3, 3), pad=0)
    dense = make_layer(rng, "dense", "bwn", (10, 300))
    for name, cls in isa.CLASSES.items():
        bits = Format.BITS if cls.mask_registers else Format.INT8
        assert default_int8(small, (1, 32, 7, 7), cls) == bits, name
        assert default_int8(dense, (1, 300), cls) == bits, name
        assert default_int8(big, (1, 32, 18, 18), cls) == Format.INT8, name
        assert default_int8(int8, (1, 32, 7, 7), cls) == Format.INT8, name
    assert [c for c in isa.CLASSES.values() if c.mask_registers] == [isa.get("x86-avx512"), isa.get("x86-avx512-vnni")]
    fmt, _ = choose_format(small, (1, 32, 7, 7), LayerChoices(), {}, isa.get("x86-avx512-vnni"))
    assert fmt == Format.BITS


def test_forced_bits_refused_by_name():
    rng = np.random.default_rng(4)
    int8 = make_layer(rng, "conv2d", "int8", (8, 4, 3, 3), pad=1)
    with pytest.raises(InputError, match=r"layer 'conv2d_int8': format 'bits' needs binary weights"):
        choose_format(int8, (1, 4, 5, 5), LayerChoices(formats={"conv2d_int8": "bits"}), {})
    big = make_layer(rng, "conv2d", "bwn", (8, 4, 3, 3), pad=1)
    with pytest.raises(InputError, match=r"layer 'conv2d_bwn': format 'bits' needs binary weights .* at most 64 output"):
        choose_format(big, (1, 4, 9, 9), LayerChoices(formats={"conv2d_bwn": "bits"}), {})
    assert bwn_conv2d.MAX_POSITIONS == 64
