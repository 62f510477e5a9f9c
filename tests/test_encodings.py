"""Storage encodings of ternary weights: exact round trips, sizes as counted, the entropy bound."""
import math

import numpy as np
import pytest

from tvm_deepchip import encodings as E
from tvm_deepchip.errors import InputError

DELTA_CODINGS = ("index_fixed", "index_rice", "run_rice")


def random_signs(shape, sparsity, rng, p_pos=0.5):
    nz = 1.0 - sparsity
    return rng.choice([-1, 0, 1], size=shape, p=[nz * (1 - p_pos), sparsity, nz * p_pos]).astype(np.int8)


CASES = [((64, 48, 3, 3), 0.9), ((33, 17, 5, 3), 0.95), ((3, 5, 7), 0.0), ((7,), 1.0), ((13, 1, 1, 1), 0.5),
         ((1,), 0.0), ((10, 301), 0.99), ((4, 9, 3, 3), 1.0), ((5, 0, 3), 0.9), ((2, 4096), 0.7)]


@pytest.mark.parametrize("encoding", E.ENCODINGS)
@pytest.mark.parametrize("shape,sparsity", CASES)
def test_round_trip_exact_and_size_as_counted(encoding, shape, sparsity):
    rng = np.random.default_rng(hash((shape, sparsity)) % 2**32)
    s = random_signs(shape, sparsity, rng, p_pos=rng.uniform(0.2, 0.8))
    data = E.encode(s, encoding)
    back = E.decode(data)
    assert back.shape == s.shape and back.dtype == np.int8
    np.testing.assert_array_equal(back, s)
    assert E.encoded_bits(s, encoding) == 8 * len(data)


@pytest.mark.parametrize("encoding,param", [("index_fixed", 1), ("index_fixed", 2), ("index_fixed", 16),
                                            ("index_rice", 0), ("index_rice", 12), ("run_rice", 0),
                                            ("run_rice", 15)])
def test_extreme_parameters_round_trip(encoding, param):
    # small fields force many escapes / long unary parts; large ones waste bits but stay exact
    s = random_signs((9, 200), 0.97, np.random.default_rng(param))
    s[0, -1], s[-1, 0] = 1, -1  # a non-zero at both channel ends
    data = E.encode(s, encoding, param)
    np.testing.assert_array_equal(E.decode(data), s)
    assert E.encoded_bits(s, encoding, param) == 8 * len(data)


def test_float_weights_sign_tensor_and_values_checked():
    w = np.array([[0.0, 0.3, -0.2], [0.3, 0.0, 0.0]], np.float32)
    s = np.sign(w)
    np.testing.assert_array_equal(E.decode(E.encode(s, "run_rice")), s.astype(np.int8))
    with pytest.raises(InputError, match="values must be -1, 0 or \\+1"):
        E.encode(np.array([[0, 2, -1]]), "packed2")
    with pytest.raises(InputError, match="unknown encoding"):
        E.encoded_bits(s, "huffman")
    data = E.encode(random_signs((8, 64), 0.9, np.random.default_rng(1)), "index_rice")
    with pytest.raises(InputError, match="truncated"):
        E.decode(data[: len(data) // 2])


def test_entropy_bound_values():
    assert E.entropy_bound_bits(np.zeros((4, 4))) == 0.0
    assert math.isclose(E.entropy_bound_bits(np.array([[-1, 0, 1]] * 5)), math.log2(3))
    s = np.array([0] * 90 + [1] * 5 + [-1] * 5)
    want = -(0.9 * math.log2(0.9) + 2 * 0.05 * math.log2(0.05))
    assert math.isclose(E.entropy_bound_bits(s.reshape(1, -1)), want)


def test_fixed_sizes():
    s = random_signs((64, 576), 0.9, np.random.default_rng(0))
    n, nnz = s.size, int(np.count_nonzero(s))
    header = 8 + 32 * 2 + 16
    assert E.encoded_bits(s, "packed2") == 8 * math.ceil((header + 2 * n) / 8)
    assert E.encoded_bits(s, "bitmap_sign") == 8 * math.ceil((header + n + nnz) / 8)


@pytest.mark.parametrize("sparsity", [0.9, 0.95])
def test_best_delta_coding_within_10_percent_of_entropy(sparsity):
    # a conv layer's worth of weights (128 x 128 x 3 x 3), signs balanced as in trained layers
    s = random_signs((128, 128, 3, 3), sparsity, np.random.default_rng(7))
    bound = E.entropy_bound_bits(s) * s.size
    sizes = {e: E.encoded_bits(s, e) for e in DELTA_CODINGS}
    best = min(sizes.values())
    assert best <= 1.10 * bound, (sizes, bound)
    assert best >= bound  # nothing beats the bound (a check on the counting itself)
    # and every delta coding beats 2-bit packing at these sparsities
    assert max(sizes.values()) < E.encoded_bits(s, "packed2")


def test_trained_layer_round_trips_and_near_bound():
    import onnx
    from pathlib import Path

    from onnx import numpy_helper

    path = Path(E.__file__).parent / "data" / "digits_ternary_float.onnx"
    if not path.is_file():
        pytest.skip("digits_ternary_float.onnx not built (scripts/train_digits.py)")
    inits = {i.name: i for i in onnx.load(str(path)).graph.initializer}
    s = np.sign(numpy_helper.to_array(inits["conv5.weight"])).astype(np.int8)
    data = E.encode(s, "run_rice")
    np.testing.assert_array_equal(E.decode(data), s)
    assert 8 * len(data) <= 1.10 * E.entropy_bound_bits(s) * s.size
