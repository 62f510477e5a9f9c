"""ternary_dense_delta: bit-exact against its numpy reference over the fuzzed dense shapes
(tests/primitive_cases.py) on every ISA class, escapes and extreme channels included."""
import numpy as np
import pytest

from primitive_cases import all_classes, check, dense_suite, make_layer

test_bit_exact, test_saturated_input, test_tuned_schedule_bit_exact = dense_suite("delta", "ternary")


@pytest.mark.parametrize("cls", all_classes())
def test_escapes_and_extreme_channels(cls):
    """99.7% zeros over 3000 inputs (escapes), one channel all zero, one all non-zero."""
    rng = np.random.default_rng(4)
    layer = make_layer(rng, "dense", "ternary", (20, 3000), sparsity=0.997)
    layer.codes[2] = 0
    layer.codes[7] = rng.choice(np.array([-1, 1], np.int8), size=3000)
    check(layer, (1, 3000), "delta", rng, cls=cls)


@pytest.mark.parametrize("cls", all_classes())
def test_long_gaps_hop_over_zero_slots(cls):
    """At 97% zeros the chains' gaps often pass 255: the pointwise lists hop to the slotted
    input's zeros (ordinary entries), so no list takes the walk's general loop, and the sums
    stay exact."""
    from tvm_deepchip.primitives import delta_lists, ternary_dense_delta

    rng = np.random.default_rng(9)
    layer = make_layer(rng, "dense", "ternary", (24, 4000), sparsity=0.97)
    w = ternary_dense_delta.pack(layer)
    ptr, flagged = 0, 0
    for _ in range(2 * w.channels):
        n, escapes, _, ptr = delta_lists.read_head(w.stream, ptr)
        assert n % w.pad == 0
        flagged, ptr = flagged + escapes, ptr + n
    assert flagged == 0 and w.entries > np.count_nonzero(layer.codes)  # hops and pads, no escapes
    check(layer, (2, 4000), "delta", rng, cls=cls)


@pytest.mark.parametrize("cls", all_classes())
def test_lists_the_encoder_could_not_pad(cls, monkeypatch):
    """Lists left unpadded (flagged: entries not a multiple of the step) take the walk's general
    loop, remainder included. Every third list flagged, in channels beside padded ones: the
    sums stay exact."""
    import itertools

    from tvm_deepchip.primitives import delta_lists

    padded, order = delta_lists._pointwise_entries, itertools.count()

    def every_third_flagged(targets, chains, pad):
        if next(order) % 3:
            return padded(targets, chains, pad)
        return delta_lists._hops(targets, chains, 0), True

    monkeypatch.setattr(delta_lists, "_pointwise_entries", every_third_flagged)
    rng = np.random.default_rng(12)
    layer = make_layer(rng, "dense", "ternary", (32, 700))
    got = check(layer, (2, 700), "delta", rng, cls=cls)
    from tvm_deepchip.primitives import delta_walk

    assert next(order) == 2 * 32 * len(delta_walk.POINT_CHAINS)  # every list of each chains' form went through it
    assert got is None or got.shape == (2, 32)


def test_four_running_sums_only_where_the_lists_stay_as_small():
    """point_lists takes 4 chains (faster) where they cost at most 1% more bytes than 2, and 2
    where the chains' longer gaps hop often: lists of ~5% density per sign keep 4, lists of
    ~0.8% take 2."""
    from tvm_deepchip.primitives import delta_walk

    rng = np.random.default_rng(41)
    for p_sign, chains in ((0.05, 4), (0.008, 2)):
        codes = rng.choice(np.array([-1, 0, 1], np.int8), size=(32, 6000), p=[p_sign, 1 - 2 * p_sign, p_sign])
        w = delta_walk.point_lists(codes)
        assert w.chains == chains, p_sign
        assert w.nbytes() <= 1.01 * min(delta_walk.DeltaLists.of(codes, c, delta_walk.UNROLL).nbytes() for c in (2, 4))
