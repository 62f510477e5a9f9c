"""int16 pair sums (primitives/pair_sums): on x86 without VNNI the int8 convs and dense layers of
binary and ternary weights (and the ternary dot forms' 0/1 planes) add vpmaddubsw's product pairs
into int16 lanes, widened to int32 once a chunk of at most 64 steps. Bit-exact against the numpy
reference on every ISA class at the int16 bound itself (chunks of 63 and 64 steps, every pair
2 * 255 on saturated inputs), for ternary codes and batch 2; only the classes that have the form
build it, and only for weights of 1."""
import numpy as np
import pytest
from primitive_cases import all_classes, check, make_layer, per_class

from tvm_deepchip import primitives
from tvm_deepchip.primitives import pair_sums, roles


@pytest.mark.parametrize("groups, steps, weight, chunk", [
    (12, 9, 1, 6), (16, 9, 1, 4), (7, 9, 1, 7), (1, 64, 1, 1), (5, 25, 1, 1), (6, 8, 1, 6),
    (1, 65, 1, None), (16, 9, 2, None)])
def test_chunk_groups(groups, steps, weight, chunk):
    """The largest whole number of channel groups whose pair sums cannot leave int16."""
    assert pair_sums.chunk_groups(groups, steps, weight) == chunk
    if chunk is not None:
        assert groups % chunk == 0
        assert chunk * steps * pair_sums.PAIR * pair_sums.MAX_CODE * weight <= np.iinfo(np.int16).max
        bigger = [b for b in range(chunk + 1, groups + 1) if groups % b == 0]
        assert all(b * steps * 2 * 255 > np.iinfo(np.int16).max for b in bigger)


def _at_bound(layer):
    """A quarter of the channels +1 everywhere, a quarter -1: every pair sum +-510 on saturated inputs."""
    layer.codes[0::4] = 1
    layer.codes[1::4] = -1
    return layer


CASES = {  # op, weights, input shape, padding: two chunks each (one chunk of all would overflow int16)
    "63-steps": ("conv2d", (16, 56, 3, 3), (1, 56, 9, 9), 1),  # 14 groups of 4 channels x 9 taps: chunks of 7
    "64-steps": ("conv2d", (8, 8, 8, 8), (1, 8, 10, 10), 0),  # 2 groups x 64 taps: chunks of 1
    "dense": ("dense", (40, 512), (2, 512), 0),  # 128 groups, one step each: chunks of 64
    "covering-conv": ("conv2d", (24, 32, 4, 4), (1, 32, 4, 4), 0),  # one position: the dense kernel
}


@pytest.mark.parametrize("cls, case", per_class(list(CASES), ["63-steps", "dense"]))
def test_pair_sums_at_the_int16_bound_bit_exact(cls, case):
    op, wshape, shape, pad = CASES[case]
    rng = np.random.default_rng(11)
    layer = _at_bound(make_layer(rng, op, "bwn", wshape, pad=pad, out=None))
    for saturated in (True, False):
        check(layer, shape, "int8", rng, saturated=saturated, cls=cls)


@pytest.mark.parametrize("cls", all_classes())
def test_ternary_codes_batch_bit_exact(cls):
    """Codes -1 / 0 / +1 (an int8 layer of ternary codes), 8-bit output, batch 2; and the ternary
    dot forms (two 0/1 planes through the dense kernel), dense and a conv covering its input."""
    rng = np.random.default_rng(12)
    layer = make_layer(rng, "conv2d", "bwn", (24, 12, 3, 3), pad=1)
    layer.codes = rng.choice(np.array([-1, 0, 1], np.int8), size=layer.codes.shape)
    check(layer, (2, 12, 9, 9), "int8", rng, cls=cls)
    check(make_layer(rng, "dense", "ternary", (300, 520)), (2, 520), "dot", rng, cls=cls)
    check(make_layer(rng, "conv2d", "ternary", (64, 16, 3, 3)), (1, 16, 3, 3), "dot", rng, saturated=True, cls=cls)


def _has_pair_sums(layer, shape, cls, fmt="int8") -> bool:
    """Whether the layer's kernel has an int16 pair-sum block, and the lowered layer says so."""
    import tvm

    lowered = primitives.lower_layer(layer, shape, fmt, cls)
    sch = tvm.s_tir.Schedule(primitives.prim_func(lowered))
    found = bool(roles.having(sch, sch.get_producers(sch.get_sblock("acc")), roles.PAIR_SUMS))
    assert found == lowered.pair_sums
    return found


@pytest.mark.parametrize("cls", all_classes())
@pytest.mark.parametrize("op, kind, fmt, wshape, shape", [
    ("conv2d", "bwn", "int8", (16, 8, 3, 3), (1, 8, 10, 10)),
    ("dense", "bwn", "int8", (16, 64), (1, 64)),
    ("dense", "ternary", "dot", (16, 64), (1, 64)),
])
def test_pair_sums_only_where_the_class_has_them(cls, op, kind, fmt, wshape, shape):
    """The vpmaddwd classes (no VNNI) sum binary weights' pairs in int16; VNNI's vpdpbusd and ARM's
    dot products keep their int32 steps; an int8 layer with a weight of 2 keeps the int32 form."""
    rng = np.random.default_rng(13)
    layer = make_layer(rng, op, kind, wshape, pad=1 if op == "conv2d" else 0)
    assert _has_pair_sums(layer, shape, cls, fmt) == cls.pair_sums == (cls.dot == "pmaddwd")
    if kind == "bwn":
        layer.codes.reshape(-1)[3] = 2
        assert not _has_pair_sums(layer, shape, cls, fmt)
