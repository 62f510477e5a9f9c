"""ternary_dense_dot: bit-exact against its numpy reference over fuzzed shapes (tests/primitive_cases.py)."""
from primitive_cases import dense_suite

test_bit_exact, test_saturated_input, test_tuned_schedule_bit_exact = dense_suite("dot", "ternary")
