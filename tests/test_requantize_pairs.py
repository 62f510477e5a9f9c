"""The pair epilogue (requantize_pairs): int16 multiplier pieces holding requantize's integers; its
two evaluations (one int32 sum where the one-piece bound holds, the carry form elsewhere) equal to
the int64 formula over the accumulators' whole range with every partial value inside int32; the
delta kernel that takes it bit-exact on every x86 class in both, with a clamp narrower than the
output type and with int8 outputs; ARM classes keep the generic form."""
from __future__ import annotations

import numpy as np
import pytest
from primitive_cases import check, make_layer
from test_requantize import split_apply

from tvm_deepchip import isa, primitives
from tvm_deepchip.primitives import requantize, requantize_pairs

SHAPE, IN_SHAPE = (16, 16, 3, 3), (1, 16, 11, 11)


def pair_apply(epi, acc_p, acc_n, axis):
    """The pair form step by step in int64: each vpmaddwd's value, the pieces recombined (one
    sum) or carried (requantize's pieces form, test_requantize.split_apply), asserting that every
    value the kernel holds stays inside int32."""
    if not epi.sum_fits_int32():
        return split_apply(epi, acc_p, acc_n, axis)
    (k, bits), shape = epi.split_form(), [1] * acc_p.ndim
    shape[axis] = -1
    c = [a.astype(np.int64).reshape(shape) for a in epi.consts()]

    def inside(v):
        assert np.abs(v).max() < 2**31
        return v

    terms = [inside(acc_p * c[i] - acc_n * c[k + i]) for i in range(k)]  # products: 15 x 16 bits
    y, b = terms[-1], c[-1]
    for i in range(k - 2, -1, -1):
        y, b = inside((y << bits) + terms[i]), inside((b << bits) + c[2 * k + i])
    return np.clip(inside(y + b) >> epi.shift, epi.lo, epi.hi).astype(epi.out_dtype)


def _layer(seed, out="uint8", act="relu"):
    return make_layer(np.random.default_rng(seed), "conv2d", "ternary", SHAPE, pad=1, out=out, act=act)


@pytest.mark.parametrize("full_precision", [False, True], ids=["one sum", "carry"])
def test_pieces_fit_int16_and_evaluate_the_formula(full_precision, monkeypatch):
    if full_precision:  # 31-bit multipliers: the one-piece bound fails, the carry form runs
        monkeypatch.setattr(requantize, "ONE_PIECE_ERROR", 0.0)
    epi = requantize.fit(_layer(3))
    paired = epi.in_pairs()
    assert paired.pairs and paired.shift == epi.shift and paired.sum_fits_int32() == (not full_precision)
    for mine, theirs in ((paired.mult_p, epi.mult_p), (paired.mult_n, epi.mult_n), (paired.bias, epi.bias)):
        np.testing.assert_array_equal(mine, theirs)  # the same integers: the same outputs
    k, bits = paired.split_form()
    assert k >= 2 and bits <= requantize.PAIR_BITS  # ~18-bit multipliers (one sum) or 31-bit: never one int16
    for piece in paired.consts()[: 2 * k]:
        assert np.abs(piece).max() < 2**15
    rng = np.random.default_rng(1)
    a_p, a_n = (np.asarray(a).reshape(1, -1, 1) for a in epi.acc_max)
    acc_p, acc_n = rng.integers(0, a_p + 1, size=(2, 16, 2000)), rng.integers(0, a_n + 1, size=(2, 16, 2000))
    acc_p[..., :2], acc_n[..., :2] = np.concatenate([0 * a_p, a_p], -1), np.concatenate([a_n, 0 * a_n], -1)
    np.testing.assert_array_equal(pair_apply(paired, acc_p, acc_n, 1), requantize.np_apply(epi, acc_p, acc_n, 1))


def test_epilogues_without_int16_pieces_stay_as_they_are():
    """An int8 layer (one accumulator) has no pairs: in_pairs() returns it unchanged."""
    epi = requantize.fit(make_layer(np.random.default_rng(2), "conv2d", "int8", (8, 3, 3, 3)))
    assert epi.in_pairs() is epi


def _pair_groups(cls, layer, monkeypatch) -> set:
    """The sizes (vectors of each list's sums) of the groups of outputs the delta kernel's TIR
    takes through the pair epilogue."""
    sizes, real = [], requantize_pairs.te_group
    monkeypatch.setattr(requantize_pairs, "te_group", lambda *a: sizes.append(len(a[-1])) or real(*a))
    primitives.prim_func(primitives.lower_layer(layer, IN_SHAPE, "delta", cls))
    return set(sizes)


@pytest.mark.parametrize("cls", [pytest.param(isa.get(n), id=n) for n in isa.X86_CLASSES])
@pytest.mark.parametrize("full_precision", [False, True], ids=["one sum", "carry"])
@pytest.mark.parametrize("out, act", [("uint8", "relu"), ("uint8", "clip"), ("int8", None)])
def test_delta_kernel_in_pairs_bit_exact(cls, full_precision, out, act, monkeypatch):
    """The x86 delta kernel takes the pair epilogue (groups of two vectors and of one) and
    matches the reference bit for bit: ReLU (the type's range), a clip to [0, 1] (an int16 clamp
    inside it), int8 outputs (vpacksswb)."""
    if full_precision:
        monkeypatch.setattr(requantize, "ONE_PIECE_ERROR", 0.0)
    layer = _layer(5, out, act)
    # 11x11 outputs, 13 flat positions a row, two tasks of 76 positions: one step of 64 + 16 lanes (a
    # 16-lane part: one ymm, AVX2's pair instructions also on AVX-512)
    assert _pair_groups(cls, layer, monkeypatch) == {1, 2}
    check(layer, IN_SHAPE, "delta", np.random.default_rng(6), cls=cls)
    check(layer, IN_SHAPE, "delta", np.random.default_rng(7), cls=cls, saturated=True)


@pytest.mark.parametrize("name", isa.ARM_CLASSES)
def test_arm_classes_keep_the_generic_epilogue(name, monkeypatch):
    cls = isa.get(name)
    assert requantize_pairs.for_class(cls) is None and not _pair_groups(cls, _layer(5), monkeypatch)


def _in_lanes(a, b, lo, hi, per):
    """x86's packs within each 128-bit lane: `per` saturated elements of a, then `per` of b."""
    return np.concatenate([np.clip(v[j:j + per], lo, hi) for j in range(0, len(a), per) for v in (a, b)])


@pytest.mark.parametrize("name", isa.X86_CLASSES)
@pytest.mark.parametrize("vectors", [1, 2])
def test_lane_order_through_a_model_of_the_instructions(name, vectors):
    """te_group's interleave and output order, through numpy models of vpunpck*wd (its Shuffle
    indices), vpmaddwd, vpackssdw and vpackuswb as the manuals define them (per 128-bit lane),
    give every output in its place at each class's width: the check of the AVX-512 order on a
    machine without AVX-512 (on AVX2 the kernel tests above run the same order natively)."""
    pm, rng = requantize_pairs.for_class(isa.get(name)), np.random.default_rng(vectors)
    n, (m_p, m_n, b, shift) = pm.int16_lanes, (1000, 700, 12345, 4)
    acc_p, acc_n = rng.integers(0, 4000, (2, vectors, n))
    halves = []
    for p, q in zip(acc_p, acc_n):
        madd = [np.concatenate([p, q])[requantize_pairs.in_lane_interleave(n, high)].reshape(-1, 2) @ [m_p, -m_n]
                for high in (False, True)]
        halves.append(_in_lanes(*[(v + b) >> shift for v in madd], -2**15, 2**15 - 1, 4))
    got = _in_lanes(halves[0], halves[-1], 0, 255, 8)[requantize_pairs.in_order(n, vectors)]
    np.testing.assert_array_equal(got, np.clip((acc_p.reshape(-1) * m_p - acc_n.reshape(-1) * m_n + b) >> shift, 0, 255))
