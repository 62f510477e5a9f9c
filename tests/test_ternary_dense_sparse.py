"""ternary_dense_sparse: bit-exact against its numpy reference over fuzzed shapes."""
import zlib

import numpy as np
import pytest

from primitive_cases import check, make_layer

FMT = "sparse"
CASES = [  # (N, K, Co, in_dtype, out, act)
    (1, 37, 10, "uint8", "uint8", "relu"),
    (2, 144, 20, "uint8", "uint8", "clip"),
    (1, 515, 33, "int8", "int8", None),
    (3, 64, 7, "uint8", None, None),  # float output (logits)
    (1, 4096, 256, "uint8", "uint8", "relu"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "x".join(map(str, c[:3])) + f"-{c[3]}-{c[4]}")
def test_bit_exact(case):
    n, k, co, dt, out, act = case
    rng = np.random.default_rng(zlib.crc32(repr(case).encode()))
    layer = make_layer(rng, "dense", "ternary", (co, k), in_dtype=dt, out=out, act=act)
    check(layer, (n, k), FMT, rng)


def test_saturated_input():
    rng = np.random.default_rng(1)
    layer = make_layer(rng, "dense", "ternary", (24, 300), sparsity=0.3)
    check(layer, (1, 300), FMT, rng, saturated=True)


@pytest.mark.parametrize("seed", [0, 1])
def test_tuned_schedule_bit_exact(seed):
    rng = np.random.default_rng(seed)
    layer = make_layer(rng, "dense", "ternary", (40, 256))
    check(layer, (1, 256), FMT, rng, knobs="sampled", seed=seed)
