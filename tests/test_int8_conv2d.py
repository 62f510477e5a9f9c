"""int8_conv2d: bit-exact against its numpy reference over fuzzed shapes (tests/primitive_cases.py)."""
import numpy as np
import pytest
from primitive_cases import build, conv_suite, make_layer, random_input, run, target

test_bit_exact, test_saturated_input_and_batch, test_tuned_schedule_bit_exact = conv_suite("int8", "int8")


def test_int8_input_extremes_through_the_unsigned_shift():
    """int8 codes are fed as q + 128 (VNNI multiplies unsigned by signed bytes): -128 and 127
    everywhere, padding included, still match the reference exactly."""
    rng = np.random.default_rng(3)
    layer = make_layer(rng, "conv2d", "int8", (16, 5, 3, 3), pad=1, in_dtype="int8", out="int8", act=None)
    lowered, lib = build(layer, (1, 5, 9, 9), "int8")
    for value in (-128, 127):
        qx = np.full((1, 5, 9, 9), value, np.int8)
        got, ref = run(lowered, lib, qx), lowered.reference(qx)
        np.testing.assert_array_equal(got, ref)
        assert len(np.unique(ref)) > 1  # the padded border differs from the inside


def test_x86_build_uses_vnni_where_the_cpu_has_it():
    from tvm.target import codegen

    if not codegen.target_has_features("avx512vnni", target()):
        pytest.skip("this CPU has no AVX512-VNNI")
    rng = np.random.default_rng(0)
    layer = make_layer(rng, "conv2d", "int8", (32, 3, 5, 5))
    _, lib = build(layer, (1, 3, 20, 20), "int8")
    assert "vpdpbusd" in lib.inspect_source("asm")


@pytest.mark.parametrize("in_dtype", ["uint8", "int8"])
def test_signed_operand_form_is_bit_exact(in_dtype):
    """The aarch64 preset feeds the dot products signed codes (sdot): uint8 inputs arrive as
    q - 128. Same arithmetic on x86 (plain vector multiply-adds), checked bit for bit."""
    rng = np.random.default_rng(5)
    layer = make_layer(rng, "conv2d", "int8", (20, 6, 3, 3), stride=2, pad=1, in_dtype=in_dtype,
                       out=in_dtype, act="relu" if in_dtype == "uint8" else None)
    lowered, lib = build(layer, (1, 6, 15, 15), "int8", int8_operand="int8")
    for qx in (random_input(rng, in_dtype, (1, 6, 15, 15)), random_input(rng, in_dtype, (1, 6, 15, 15), saturated=True)):
        np.testing.assert_array_equal(run(lowered, lib, qx), lowered.reference(qx))


def test_aarch64_build_uses_sdot():
    from tvm_deepchip import targets

    preset = targets.get_preset("aarch64")
    rng = np.random.default_rng(0)
    layer = make_layer(rng, "conv2d", "int8", (32, 3, 5, 5))
    _, lib = build(layer, (1, 3, 20, 20), "int8", int8_operand=preset.int8_operand, tgt=targets.tvm_target(preset))
    assert "sdot" in lib.inspect_source("asm")
