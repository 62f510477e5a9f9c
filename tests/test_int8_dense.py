"""int8_dense: bit-exact against its numpy reference over fuzzed shapes (tests/primitive_cases.py)."""
import isa_devices
import numpy as np
import pytest
from primitive_cases import all_classes, build, dense_suite, make_layer, random_input

from tvm_deepchip import targets

test_bit_exact, test_saturated_input, test_tuned_schedule_bit_exact = dense_suite("int8", "int8")


def test_dot_instructions_decide_the_split_over_cores():
    """The int8 dense runs on two cores by the vector instructions of its dot products, as the
    int8 conv does (dot_product.parallel_min_dot_ops): the MLP's first layer (784 -> 512, 0.4 M
    MACs) is two cores' work on AVX2 (50 K instructions) and not with VNNI (6 K); one of 128 -> 64
    is one core's on both."""
    from primitive_cases import make_layer, split_over_cores

    rng = np.random.default_rng(0)
    for (co, ci), parallel in (((512, 784), {"x86-avx2": True, "x86-avx512-vnni": False}),
                               ((64, 128), {"x86-avx2": False, "x86-avx512-vnni": False})):
        layer = make_layer(rng, "dense", "int8", (co, ci))
        for name, expected in parallel.items():
            assert split_over_cores(layer, (1, ci), "int8", name) == expected, (name, co, ci)


def test_large_weights_are_stored_in_int8_next_to_int16_codes():
    """Next to x86 vpmaddwd's int16 codes a dense layer's weights stay int16 where they fit the
    caches (the MLP's 784 -> 512: 0.8 MB) and are int8 from INT8_STORAGE_MIN_BYTES (AlexNet's
    fc3, 4096 -> 1000: 8.2 MB as int16); every other operand stores int8."""
    from tvm_deepchip.primitives import int8_dense

    assert int8_dense.weight_dtype("int16", 512 * 784) == "int16"
    assert int8_dense.weight_dtype("int16", 1008 * 4096) == "int8"
    assert int8_dense.weight_dtype("uint8", 1008 * 4096) == int8_dense.weight_dtype("int8", 16) == "int8"


@pytest.mark.parametrize("cls", all_classes())
def test_int8_stored_weights_bit_exact(cls, monkeypatch):
    """The int8-stored form (threshold lowered so a small layer takes it): the vpmaddwd classes
    read int8 weights and sign-extend them in the kernel (the channels intrinsic over int8 B),
    bit-exact on every class with saturated codes and batch 2 too."""
    from tvm_deepchip.primitives import int8_dense

    monkeypatch.setattr(int8_dense, "INT8_STORAGE_MIN_BYTES", 1)
    rng = np.random.default_rng(5)
    layer = make_layer(rng, "dense", "int8", (40, 75))
    for shape in ((1, 75), (2, 75)):
        lowered, lib = build(layer, shape, "int8", cls=cls, tgt=targets.tvm_target(isa_devices.preset(cls)))
        isa_devices.check_assembly(cls, lib, lowered.primitive)
        assert str(lowered.consts[0].dtype) == "int8"
        if cls.dot == "pmaddwd":
            assert "vpmovsxbw" in lib.inspect_source("asm")
        inputs = [random_input(rng, "uint8", shape), random_input(rng, "uint8", shape, saturated=True)]
        outs = isa_devices.run(cls, lowered, lib, inputs)
        for got, qx in zip(outs or [], inputs):
            np.testing.assert_array_equal(got, lowered.reference(qx))
