"""int8_dense: bit-exact against its numpy reference over fuzzed shapes (tests/primitive_cases.py)."""
from primitive_cases import dense_suite

test_bit_exact, test_saturated_input, test_tuned_schedule_bit_exact = dense_suite("int8", "int8")


def test_dot_instructions_decide_the_split_over_cores():
    """The int8 dense runs on two cores by the vector instructions of its dot products, as the
    int8 conv does (dot_product.parallel_min_dot_ops): the MLP's first layer (784 -> 512, 0.4 M
    MACs) is two cores' work on AVX2 (50 K instructions) and not with VNNI (6 K); one of 128 -> 64
    is one core's on both."""
    import numpy as np

    from primitive_cases import make_layer, split_over_cores

    rng = np.random.default_rng(0)
    for (co, ci), parallel in (((512, 784), {"x86-avx2": True, "x86-avx512-vnni": False}),
                               ((64, 128), {"x86-avx2": False, "x86-avx512-vnni": False})):
        layer = make_layer(rng, "dense", "int8", (co, ci))
        for name, expected in parallel.items():
            assert split_over_cores(layer, (1, ci), "int8", name) == expected, (name, co, ci)
