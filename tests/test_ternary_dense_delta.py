"""ternary_dense_delta: bit-exact against its numpy reference over the fuzzed dense shapes
(tests/primitive_cases.py) on every ISA class, escapes and extreme channels included."""
import numpy as np
import pytest

from primitive_cases import all_classes, check, dense_suite, make_layer

test_bit_exact, test_saturated_input, test_tuned_schedule_bit_exact = dense_suite("delta", "ternary")


@pytest.mark.parametrize("cls", all_classes())
def test_escapes_and_extreme_channels(cls):
    """99.7% zeros over 3000 inputs (escapes), one channel all zero, one all non-zero."""
    rng = np.random.default_rng(4)
    layer = make_layer(rng, "dense", "ternary", (20, 3000), sparsity=0.997)
    layer.codes[2] = 0
    layer.codes[7] = rng.choice(np.array([-1, 1], np.int8), size=3000)
    check(layer, (1, 3000), "delta", rng, cls=cls)
