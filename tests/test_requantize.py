"""The shared epilogue's exact evaluations (int32 in one piece where shorter multipliers allow, in
pieces where the accumulator bounds allow, float64 otherwise): chosen from the constants, the same
integers as the int64 reference, kernels bit-exact in every form; the one-piece constants round
differently only next to a rounding boundary."""
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


def split_apply(epi, acc_p, acc_n, channel_axis):
    """The int32 form step by step in int64, asserting that no partial sum leaves int32."""
    (k, bits), shape = epi.split_form(), [1] * acc_p.ndim
    shape[channel_axis] = -1
    consts = epi.consts()
    assert all(c.dtype == np.int32 for c in consts)
    p = [c.astype(np.int64).reshape(shape) for c in consts]

    def inside(v):
        assert np.abs(v).max() < 2**31
        return v

    def term(i):
        t = inside(acc_p * p[i])
        if epi.mult_n is not None:
            t = inside(t - inside(acc_n * p[k + i]))
        return inside(t + p[len(p) - k + i])

    y = term(0)
    for i in range(1, k):
        y = inside(term(i) + (y >> bits))
    return np.clip(y >> (epi.shift - (k - 1) * bits), epi.lo, epi.hi).astype(epi.out_dtype)


@pytest.mark.parametrize("form", ["int32", "float64"])
@pytest.mark.parametrize("op, fmt, wshape, in_shape", TERNARY_CASES, ids=lambda v: str(v))
def test_kernels_bit_exact_in_both_forms(op, fmt, wshape, in_shape, form, monkeypatch):
    if form == "float64":
        monkeypatch.setattr(requantize, "INT32_LIMIT", 0)  # no bound fits: the float64 form
    rng = np.random.default_rng(len(wshape) * 100 + wshape[0])
    layer = make_layer(rng, op, "ternary", wshape)
    epi = requantize.fit(layer)
    assert epi.integer and (epi.split_form() is not None) == (form == "int32")
    assert {c.dtype for c in epi.consts()} == {np.dtype(np.int32 if form == "int32" else np.float64)}
    check(layer, in_shape, fmt, rng)  # kernel == reference bit for bit; reference within a step of exact


@pytest.mark.parametrize("taps, in_dtype, pieces", [(9, "uint8", 1), (9, "uint8", 2), (72, "uint8", 2), (144, "int8", 2)])
def test_int32_form_is_the_reference_formula_inside_int32(taps, in_dtype, pieces, monkeypatch):
    """Over the accumulators' whole range (both extremes included), the one-piece and the pieces
    evaluations give the int64 formula's integers with no partial sum outside int32."""
    if pieces == 2:
        monkeypatch.setattr(requantize, "ONE_PIECE_ERROR", 0.0)  # full-precision multipliers
    rng = np.random.default_rng(taps)
    layer = make_layer(rng, "conv2d", "ternary", (8, taps // 9, 3, 3), sparsity=0.0, in_dtype=in_dtype,
                       out=in_dtype)
    epi = requantize.fit(layer)
    assert epi.split_form()[0] == pieces  # 16-bit accumulators: one piece, or two at full precision
    a_p, a_n = (np.asarray(a).reshape(1, -1, 1) for a in epi.acc_max)
    lo_p, lo_n = (-a_p, -a_n) if in_dtype == "int8" else (0 * a_p, 0 * a_n)
    acc_p = rng.integers(lo_p, a_p + 1, size=(2, 8, 400))
    acc_n = rng.integers(lo_n, a_n + 1, size=(2, 8, 400))
    acc_p[..., :2], acc_n[..., :2] = np.concatenate([lo_p, a_p], -1), np.concatenate([a_n, lo_n], -1)
    np.testing.assert_array_equal(split_apply(epi, acc_p, acc_n, 1), requantize.np_apply(epi, acc_p, acc_n, 1))


def test_int8_accumulators_take_three_pieces_and_giant_ones_float64():
    """An int8 layer over 75 taps (a first layer) needs three int32 pieces; one over 4800 taps an
    accumulator of 2^30: no split keeps every partial sum inside int32, so float64."""
    rng = np.random.default_rng(4)
    first = make_layer(rng, "conv2d", "int8", (8, 3, 5, 5))
    epi = requantize.fit(first)
    assert epi.split_form()[0] == 3
    a_p = np.asarray(epi.acc_max[0]).reshape(1, -1)
    acc = rng.integers(-a_p, a_p + 1, size=(500, 8))
    acc[:2] = np.concatenate([-a_p, a_p])
    np.testing.assert_array_equal(split_apply(epi, acc, None, 1), requantize.np_apply(epi, acc, None, 1))
    big = requantize.fit(make_layer(rng, "conv2d", "int8", (8, 192, 5, 5)))
    assert big.integer and big.split_form() is None
    assert {c.dtype for c in big.consts()} == {np.dtype(np.float64)}


def test_the_form_never_changes_the_constants(monkeypatch):
    """The pieces form evaluates the float64 form's constants: the same M, B and shift, so which
    one a kernel uses never changes an output (the one-piece form aside, which fit() chooses
    with its own, shorter constants: next test)."""
    monkeypatch.setattr(requantize, "ONE_PIECE_ERROR", 0.0)
    rng = np.random.default_rng(5)
    layer = make_layer(rng, "conv2d", "ternary", (32, 16, 3, 3), sparsity=0.7)
    epi = requantize.fit(layer)
    k, bits = epi.split_form()
    assert np.abs(epi.mult_p).max() >= 2**29  # full precision: ~30-bit multipliers
    pieces = epi.consts()
    for j, whole in enumerate((epi.mult_p, epi.mult_n, epi.bias)):
        own = pieces[j * k:(j + 1) * k]
        np.testing.assert_array_equal(sum(p.astype(np.int64) * 2**(i * bits) for i, p in enumerate(own)), whole)


def test_one_piece_constants_round_differently_only_next_to_a_boundary(monkeypatch):
    """fit() shortens the multipliers for the one-piece form only as far as ONE_PIECE_ERROR: an
    output then differs from the full-precision one by at most one code, and only where the
    real-valued requantization lies within that distance of a rounding boundary."""
    rng = np.random.default_rng(11)
    layer = make_layer(rng, "conv2d", "ternary", (16, 16, 3, 3), sparsity=0.9)
    short, allowed = requantize.fit(layer), requantize.ONE_PIECE_ERROR
    monkeypatch.setattr(requantize, "ONE_PIECE_ERROR", 0.0)
    full = requantize.fit(layer)
    assert short.split_form()[0] == 1 and full.split_form()[0] == 2 and short.shift < full.shift
    a_p, a_n = (np.asarray(a).reshape(1, -1, 1) for a in short.acc_max)
    acc_p, acc_n = rng.integers(0, a_p + 1, size=(4, 16, 4096)), rng.integers(0, a_n + 1, size=(4, 16, 4096))
    ys, yf = requantize.np_apply(short, acc_p, acc_n, 1), requantize.np_apply(full, acc_p, acc_n, 1)
    # the real value before rounding, from the full-precision constants (2^-30 of a code off at most)
    real = (acc_p * full.mult_p.reshape(1, -1, 1) - acc_n * full.mult_n.reshape(1, -1, 1)
            + full.bias.reshape(1, -1, 1)) / 2.0**full.shift
    inside = (real >= short.lo) & (real < short.hi + 1)
    differ = (ys != yf) & inside
    assert np.abs(ys.astype(int) - yf.astype(int)).max() <= 1
    to_boundary = np.abs(real - np.round(real))  # rounding boundaries of floor(real) are the integers
    assert differ.any() and np.all(to_boundary[differ] <= allowed + 2.0**-20)


def test_shifted_int8_epilogue_gives_the_unshifted_outputs():
    """VNNI's +128 input shift moves the bias by M * 128 * sum(w): applied to the shifted
    accumulator, the result is that of the unshifted fit, whichever form the kernel takes."""
    rng = np.random.default_rng(1)
    layer = make_layer(rng, "conv2d", "int8", (4, 2, 1, 1), in_dtype="int8", out="int8", act=None)
    epi = int8_weights.shifted_epilogue(layer, "uint8")
    q = rng.integers(-128, 128, size=(256, 2))
    w = layer.codes.reshape(4, 2).astype(np.int64)
    same = requantize.np_apply(requantize.fit(replace(layer, in_dtype="uint8")), q @ w.T, None, channel_axis=1)
    np.testing.assert_array_equal(requantize.np_apply(epi, (q + 128) @ w.T, None, channel_axis=1), same)
    if epi.split_form():
        np.testing.assert_array_equal(split_apply(epi, (q + 128) @ w.T, None, 1), same)


def test_the_bound_of_non_negative_accumulators_is_the_largest_partial_sum():
    """Sums of codes >= 0 (ternary layers on uint8 codes): the partial sums M_p*a_p, M_p*a_p -
    M_n*a_n and that + B are linear in (a_p, a_n), so their largest magnitude over the box
    [0, max]^2 is at a corner; the bound is exactly that, and never above the bound that
    allows either sign."""
    rng = np.random.default_rng(11)
    for _ in range(200):
        m_p, m_n = rng.integers(0, 2**20, size=(2, 4))
        bias = rng.integers(-2**34, 2**34, size=4)
        a_p, a_n = rng.integers(0, 2**14, size=(2, 4))
        corners = [(x, y) for x in (0, 1) for y in (0, 1)]
        worst = max(int(np.abs(v).max()) for x, y in corners
                    for v in (m_p * a_p * x, m_p * a_p * x - m_n * a_n * y, m_p * a_p * x - m_n * a_n * y + bias))
        tight = requantize._largest_sum(m_p, m_n, bias, a_p, a_n, nonneg=True)
        assert tight == max(worst, int(np.abs(m_n * a_n).max()))  # the product itself is a term too
        assert tight <= requantize._largest_sum(m_p, m_n, bias, a_p, a_n)


def test_int8_and_int8_input_layers_keep_the_bound_of_either_sign():
    """Accumulators that can be negative (int8 weights, or int8 input codes) are not bounded by
    the non-negative form."""
    rng = np.random.default_rng(12)
    assert not requantize.fit(make_layer(rng, "conv2d", "int8", (8, 4, 3, 3))).acc_nonneg
    assert not requantize.fit(make_layer(rng, "conv2d", "ternary", (8, 4, 3, 3), in_dtype="int8", out="int8")).acc_nonneg
    assert requantize.fit(make_layer(rng, "conv2d", "ternary", (8, 4, 3, 3))).acc_nonneg
