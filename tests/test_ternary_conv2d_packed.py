"""ternary_conv2d_packed: bit-exact against its numpy reference over fuzzed shapes."""
import zlib

import numpy as np
import pytest

from primitive_cases import check, make_layer

FMT = "packed"
CASES = [  # (Co, Ci, k, stride, pad, H, W, in_dtype, out, act)
    (8, 5, 3, 1, 1, 9, 7, "uint8", "uint8", "relu"),
    (13, 7, 3, 2, 1, 11, 10, "uint8", "uint8", "clip"),
    (16, 3, 5, 1, 2, 12, 12, "int8", "int8", None),
    (9, 4, 1, 1, 0, 7, 13, "uint8", "uint8", "relu"),
    (6, 3, 11, 4, 2, 27, 27, "uint8", "uint8", "relu"),
    (64, 64, 3, 1, 1, 18, 18, "uint8", "uint8", "clip"),
    (10, 33, 3, 1, 0, 6, 6, "uint8", None, "relu"),  # float output (logits)
    (128, 128, 5, 1, 0, 5, 5, "uint8", "uint8", "relu"),  # K = 3200: int32 accumulator
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "x".join(map(str, c[:7])) + f"-{c[7]}-{c[8]}")
def test_bit_exact(case):
    co, ci, k, s, p, h, w, dt, out, act = case
    rng = np.random.default_rng(zlib.crc32(repr(case).encode()))
    layer = make_layer(rng, "conv2d", "ternary", (co, ci, k, k), stride=s, pad=p, in_dtype=dt, out=out, act=act)
    check(layer, (1, ci, h, w), FMT, rng)


def test_saturated_input_and_batch():
    rng = np.random.default_rng(1)
    layer = make_layer(rng, "conv2d", "ternary", (12, 16, 3, 3), pad=1, sparsity=0.5)
    check(layer, (2, 16, 8, 8), FMT, rng, saturated=True)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tuned_schedule_bit_exact(seed):
    rng = np.random.default_rng(seed)
    layer = make_layer(rng, "conv2d", "ternary", (32, 24, 3, 3), pad=1)
    check(layer, (1, 24, 14, 14), FMT, rng, knobs="sampled", seed=seed)
