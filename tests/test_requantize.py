"""The shared epilogue's two exact forms (int32 where its bound allows, float64 otherwise): chosen by
fit, the same integer formula as the numpy reference, kernels bit-exact in both."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from primitive_cases import check, make_layer

from tvm_deepchip.primitives import int8_weights, requantize

TERNARY_CASES = [  # (op, fmt, weight shape, input shape)
    ("conv2d", "sparse", (16, 8, 3, 3), (1, 8, 9, 9)),
    ("conv2d", "packed", (16, 8, 3, 3), (1, 8, 9, 9)),
    ("dense", "sparse", (24, 96), (1, 96)),
    ("dense", "packed", (24, 96), (1, 96)),
]


@pytest.mark.parametrize("form", ["int32", "float64"])
@pytest.mark.parametrize("op, fmt, wshape, in_shape", TERNARY_CASES, ids=lambda v: str(v))
def test_kernels_bit_exact_in_both_forms(op, fmt, wshape, in_shape, form, monkeypatch):
    if form == "float64":
        monkeypatch.setattr(requantize, "NARROW_BITS", 0)  # no bound fits: the float64 form
    rng = np.random.default_rng(len(wshape) * 100 + wshape[0])
    layer = make_layer(rng, op, "ternary", wshape)
    epi = requantize.fit(layer)
    assert epi.integer and epi.narrow == (form == "int32")
    assert {c.dtype for c in epi.consts()} == {np.dtype(np.int32 if form == "int32" else np.float64)}
    check(layer, in_shape, fmt, rng)  # kernel == reference bit for bit; reference within a step of exact


def test_int32_form_keeps_every_partial_sum_inside_int32():
    rng = np.random.default_rng(3)
    for taps in (9, 36, 72):  # dense ternary windows of up to 72 taps
        layer = make_layer(rng, "conv2d", "ternary", (8, taps // 9, 3, 3), sparsity=0.0)
        epi = requantize.fit(layer)
        assert epi.narrow, taps
        assert epi.fits_narrow()
        n_p, n_n = requantize.tap_counts(layer)
        worst = np.abs(epi.mult_p) * 255 * n_p + np.abs(epi.mult_n) * 255 * n_n + np.abs(epi.bias)
        assert worst.max() < 2**31
        assert max(np.abs(epi.mult_p).max(), np.abs(epi.mult_n).max()) >= 2**requantize.NARROW_MULT_BITS


def test_large_accumulators_keep_the_float64_form():
    """An int8 layer over 4800 taps: int32 would leave the multiplier too few bits."""
    rng = np.random.default_rng(4)
    layer = make_layer(rng, "conv2d", "int8", (8, 192, 5, 5))
    epi = requantize.fit(layer)
    assert epi.integer and not epi.narrow
    assert {c.dtype for c in epi.consts()} == {np.dtype(np.float64)}


def test_int32_and_float64_forms_agree_within_a_step():
    """Both forms round the same real value; the int32 one's shorter multiplier moves it by at
    most 255 / 2^16 of a step, so they differ by one step at most, and rarely."""
    rng = np.random.default_rng(5)
    layer = make_layer(rng, "conv2d", "ternary", (32, 16, 3, 3), sparsity=0.7)
    narrow, wide = requantize.fit(layer), requantize.fit(layer, allow_narrow=False)
    assert narrow.narrow and not wide.narrow and narrow.shift < wide.shift
    n_p, n_n = requantize.tap_counts(layer)
    acc_p = rng.integers(0, 255 * n_p.reshape(1, -1, 1) + 1, size=(4, 32, 500))
    acc_n = rng.integers(0, 255 * n_n.reshape(1, -1, 1) + 1, size=(4, 32, 500))
    a = requantize.np_apply(narrow, acc_p, acc_n, channel_axis=1).astype(np.int64)
    b = requantize.np_apply(wide, acc_p, acc_n, channel_axis=1).astype(np.int64)
    diff = np.abs(a - b)
    assert diff.max() <= 1 and diff.mean() < 1e-3, (diff.max(), diff.mean())
    assert len(np.unique(b)) > 10  # not a saturated, trivially equal output


@pytest.mark.parametrize("seed, stays_int32", [(1, True), (0, False)])
def test_shifted_int8_epilogue_same_outputs_and_falls_back_when_the_shift_leaves_int32(seed, stays_int32):
    """VNNI's +128 input shift moves the bias by M * 128 * sum(w): applied to the shifted
    accumulator the result is that of the unshifted fit; when the moved bias leaves int32, the
    float64 form is fitted instead (positive weights: the shift adds the most)."""
    rng = np.random.default_rng(seed)
    layer = make_layer(rng, "conv2d", "int8", (4, 2, 1, 1), in_dtype="int8", out="int8", act=None)
    layer.codes[:] = np.abs(layer.codes) // 8  # small weights: the unshifted fit is int32
    unshifted = replace(layer, in_dtype="uint8")
    assert requantize.fit(unshifted).narrow
    epi = int8_weights.shifted_epilogue(layer, "uint8")
    assert epi.narrow == stays_int32 and (not epi.narrow or epi.fits_narrow())
    q = rng.integers(-128, 128, size=(256, 2))
    w = layer.codes.reshape(4, 2).astype(np.int64)
    same = requantize.np_apply(requantize.fit(unshifted, allow_narrow=epi.narrow), q @ w.T, None, channel_axis=1)
    np.testing.assert_array_equal(requantize.np_apply(epi, (q + 128) @ w.T, None, channel_axis=1), same)
