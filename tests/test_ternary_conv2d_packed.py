"""ternary_conv2d_packed: bit-exact against its numpy reference over fuzzed shapes (tests/primitive_cases.py)."""
from primitive_cases import conv_suite

test_bit_exact, test_saturated_input_and_batch, test_tuned_schedule_bit_exact = conv_suite("packed", "ternary")
