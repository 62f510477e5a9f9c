"""The int8 kernels' narrow-weight form on x86 without VNNI: layers whose weights fit in 7 bits
(binary and ternary codes, BWN layers) multiply uint8 codes through vpmaddubsw + vpmaddwd
(schedules/x86/pmaddubsw.py) instead of int16 pairs through vpmaddwd. Bit-exact against the
numpy reference on every ISA class at the bound itself (|w| = 64 against inputs of 255 in every
pair: 32640, the largest pair sum that does not saturate int16), conv and dense, batch 2, a tuned
schedule too; the operand choice stops at the bound (65 keeps int16 pairs)."""
import numpy as np
import pytest
import isa_devices
from primitive_cases import all_classes, build, check, make_layer, per_class

from tvm_deepchip import isa, targets
from tvm_deepchip.primitives import int8_weights

BOUND = int8_weights.NARROW_WEIGHT_MAX


def _narrow(layer, rng, top=BOUND):
    """`layer` with weights in [-top, top], a quarter of its output channels at +top or -top
    everywhere (each pair of products at the bound on a saturated input)."""
    codes = rng.integers(-top, top + 1, size=layer.codes.shape)
    codes[0::4] = top
    codes[1::4] = -top
    layer.codes = codes.astype(np.int8)
    return layer


def _binary(layer, rng):
    layer.codes = rng.choice(np.array([-1, 1], np.int8), size=layer.codes.shape)
    return layer


@pytest.mark.parametrize("cls", all_classes())
def test_operand_by_class_and_weight_bound(cls):
    """uint8 codes for weights of at most 7 bits on the vpmaddwd classes, the class's own operand
    otherwise (VNNI's uint8, ARM's int8, and int16 pairs for weights of 65 or more)."""
    narrow, wide = np.array([[-BOUND, BOUND, 0]]), np.array([[-BOUND - 1, 3]])
    if cls.dot == "pmaddwd":
        assert int8_weights.dot_operand(cls, narrow) == "uint8"
        assert int8_weights.dot_operand(cls, wide) == "int16" == cls.int8_operand
    else:
        assert int8_weights.dot_operand(cls, narrow) == int8_weights.dot_operand(cls, wide) == cls.int8_operand


@pytest.mark.parametrize("cls, case", per_class(["conv-uint8", "conv-int8", "dense-uint8"], ["conv-uint8"]))
def test_bound_weights_on_saturated_inputs_bit_exact(cls, case):
    kind, dt = case.split("-")
    rng = np.random.default_rng(7)
    if kind == "conv":
        layer = _narrow(make_layer(rng, "conv2d", "int8", (24, 12, 3, 3), pad=1, in_dtype=dt, out=dt,
                                   act="relu" if dt == "uint8" else None), rng)
        shape = (2, 12, 9, 9)
    else:
        layer = _narrow(make_layer(rng, "dense", "int8", (40, 300), in_dtype=dt, out=dt), rng)
        shape = (2, 300)
    for saturated in (False, True):
        check(layer, shape, "int8", rng, saturated=saturated, cls=cls)


@pytest.mark.parametrize("cls, seed", per_class([0, 1], [0]))
def test_binary_weights_tuned_schedule_bit_exact(cls, seed):
    """BWN codes (+-1) through a sampled (tuned) schedule of the narrow form."""
    rng = np.random.default_rng(seed)
    layer = _binary(make_layer(rng, "conv2d", "int8", (32, 24, 3, 3), pad=1), rng)
    check(layer, (1, 24, 14, 14), "int8", rng, knobs="sampled", seed=seed, cls=cls)


@pytest.mark.parametrize("name", ["x86-avx2", "x86-avx512"])
def test_narrow_weights_use_vpmaddubsw_and_wide_ones_do_not(name):
    """On the vpmaddwd classes the build of a 7-bit layer holds vpmaddubsw; one weight of 65
    keeps the whole layer on int16 pairs (vpmaddwd alone)."""
    cls = isa.CLASSES[name]
    rng = np.random.default_rng(3)
    for top, expected in ((BOUND, True), (BOUND + 1, False)):
        layer = _narrow(make_layer(rng, "conv2d", "int8", (16, 8, 3, 3), pad=1), rng, top)
        lowered, lib = build(layer, (1, 8, 10, 10), "int8", cls=cls, tgt=targets.tvm_target(targets.get_preset(name)))
        isa_devices.check_assembly(cls, lib, lowered.primitive)
        assert ("vpmaddubsw" in lib.inspect_source("asm")) is expected, (name, top)
