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
        flagged, ptr = flagged + escapes, ptr + w.chains - 1 + n
    assert flagged == 0 and w.entries > np.count_nonzero(layer.codes)  # hops and pads, no escapes
    check(layer, (2, 4000), "delta", rng, cls=cls)


def test_chains_walk_runs_of_taps_from_their_start_slots():
    """The pointwise lists cut their taps into one run per chain, each from its start slot: at 95%
    zeros a chain's gaps span one tap (mean ~40), so almost no entry hops, and the chains are led
    by zero entries to the same length (entries: the taps, at most 2% hops, and under one step of
    pads a list); the numpy decode gives back every tap."""
    from tvm_deepchip.primitives import delta_lists

    rng = np.random.default_rng(5)
    codes = rng.choice(np.array([-1, 0, 1], np.int8), size=(16, 9216), p=[0.025, 0.95, 0.025])
    w = delta_lists.DeltaLists.of(codes, 4, 4)
    assert w.entries <= 1.02 * np.count_nonzero(codes) + 2 * 16 * 3
    ptr = 0
    for row in codes:
        for value in (1, -1):
            n, escapes, _, head_end = delta_lists.read_head(w.stream, ptr)
            starts = w.stream[head_end : head_end + 3]
            assert not escapes and n % 4 == 0 and list(starts) == sorted(starts) and starts[-1] > 0
            taps, ptr = delta_lists.decode_list(w.stream, ptr, 4, 4)
            np.testing.assert_array_equal(taps, np.flatnonzero(row == value))
    assert ptr == len(w.stream)


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
