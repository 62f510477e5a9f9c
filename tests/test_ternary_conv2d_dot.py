"""ternary_conv2d_dot: a conv whose kernel covers its whole input, as ternary_dense_dot's kernel over
the flattened image; bit-exact against its numpy reference on every ISA class (tests/primitive_cases.py)."""
import numpy as np
import pytest

from primitive_cases import _seeded, all_classes, check, make_layer, per_class
from tvm_deepchip import primitives
from tvm_deepchip.errors import InputError
from tvm_deepchip.formats import Format

CASES = [  # (Co, Ci, k, H = W, in_dtype, out, act): one output position each
    (20, 7, 3, 3, "int8", "int8", None),
    (128, 128, 5, 5, "uint8", "uint8", "relu"),  # K = 3200, the int32 accumulator
    (33, 5, 1, 1, "uint8", "uint8", "clip"),  # a 1x1 map (what dead_taps.crop leaves of a padded 3x3)
    (10, 9, 2, 2, "uint8", None, None),  # float output (logits)
]


@pytest.mark.parametrize("cls, case", per_class(CASES, [CASES[0], CASES[3]]))
def test_bit_exact(cls, case):
    co, ci, k, hw, dt, out, act = case
    rng = _seeded(case)
    layer = make_layer(rng, "conv2d", "ternary", (co, ci, k, k), in_dtype=dt, out=out, act=act)
    check(layer, (1, ci, hw, hw), Format.DOT, rng, cls=cls)


@pytest.mark.parametrize("cls", all_classes())
def test_saturated_input_and_batch(cls):
    rng = np.random.default_rng(1)
    layer = make_layer(rng, "conv2d", "ternary", (24, 16, 3, 3), sparsity=0.3)
    check(layer, (2, 16, 3, 3), Format.DOT, rng, saturated=True, cls=cls)


@pytest.mark.parametrize("cls, seed", per_class([0, 1], [0]))
def test_tuned_schedule_bit_exact(cls, seed):
    rng = np.random.default_rng(seed)
    layer = make_layer(rng, "conv2d", "ternary", (40, 16, 4, 4))
    check(layer, (1, 16, 4, 4), Format.DOT, rng, knobs="sampled", seed=seed, cls=cls)


def test_offered_only_where_the_kernel_covers_the_input():
    rng = np.random.default_rng(0)
    layer = make_layer(rng, "conv2d", "ternary", (8, 4, 3, 3))
    assert Format.DOT in primitives.formats_for(layer, (1, 4, 3, 3))
    assert Format.DOT not in primitives.formats_for(layer, (1, 4, 5, 5))  # 3x3 output positions
    assert Format.DOT not in primitives.formats_for(layer)  # no shape: not known to cover
    with pytest.raises(InputError, match=r"layer 'conv2d_ternary': format 'dot' runs a conv only where its kernel "
                                         r"covers its whole unpadded input .* kernel 3x3, strides 1x1, padding \(0, 0, 0, 0\), input 5x5"):
        primitives.lower_layer(layer, (1, 4, 5, 5), Format.DOT)
