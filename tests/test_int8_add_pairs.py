"""The residual add in int16 pairs (primitives/int8_add_pairs.py): multiplier pieces that fit
int16 and hold int8_add's integers; a numpy model of the kernel's arithmetic equal to
int8_add.reference over every pair of codes, every int32 value inside int32; the lane order
through numpy models of the x86 instructions at every x86 width; the delta conv with a fused
residual add taking it and bit-exact on every x86 class (rows of whole vectors), the int32 form on
rows that are not and on ARM."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from primitive_cases import make_layer, random_input
from test_int8_add import CASES
from test_requantize_pairs import _in_lanes

import isa_devices
import tvm
from tvm import te
from tvm_deepchip import isa, primitives, targets
from tvm_deepchip.primitives import int8_add, int8_add_pairs, requantize_pairs
from tvm_deepchip.schedules import schedule_func

# multipliers of one piece each (fit() picks ~22 bits; constants built by hand): relu's codes
ALL_CASES = {**CASES, "one piece": CASES["relu"]}
ONE_PIECE = int8_add.AddConsts(mult_a=20011, zero_a=-3, mult_b=17003, zero_b=0, shift=15, zero_y=0, lo=0, hi=255,
                               out_dtype="uint8")


def _consts(name):
    a, b, y, lo, hi = ALL_CASES[name]
    return ONE_PIECE if name == "one piece" else int8_add.fit(a, b, y, lo, hi)


def _every_pair(c: int8_add.AddConsts, case):
    (a, b) = case[:2]
    qa, qb = np.meshgrid(*(np.arange(np.iinfo(d[2]).min, np.iinfo(d[2]).max + 1) for d in (a, b)), indexing="ij")
    return qa.reshape(-1).astype(a[2]), qb.reshape(-1).astype(b[2])


@pytest.mark.parametrize("name", list(ALL_CASES))
def test_pieces_fit_int16_and_hold_the_multipliers(name):
    c = _consts(name)
    pairs = int8_add_pairs.piece_pairs(c)
    assert int8_add_pairs.usable(c) and len(pairs) == (1 if name == "one piece" else 2)
    for which, mult in ((0, c.mult_a), (1, c.mult_b)):
        assert sum(p[which] << (int8_add_pairs.PIECE_BITS * i) for i, p in enumerate(pairs)) == mult
        assert all(-2**15 <= p[which] < 2**15 for p in pairs)


@pytest.mark.parametrize("name", list(ALL_CASES))
def test_numpy_model_equals_the_reference_for_every_pair_of_codes(name):
    c = _consts(name)
    qa, qb = _every_pair(c, ALL_CASES[name])
    got = int8_add_pairs.np_value(qa, qb, c)  # asserts every int32 value fits
    np.testing.assert_array_equal(got, int8_add.reference(qa, qb, c))
    assert len(np.unique(got)) > 50


@pytest.mark.parametrize("name", isa.X86_CLASSES)
def test_lane_order_through_a_model_of_the_instructions(name):
    """te_vector's interleave and output order, through numpy models of vpunpck*wd (its Shuffle
    indices), vpmaddwd, vpackssdw and vpackuswb (per 128-bit lane, with the vector packed with
    itself): every output in its place, at each class's width (AVX-512's on any machine)."""
    pm, rng, c = requantize_pairs.for_class(isa.get(name)), np.random.default_rng(0), _consts("relu")
    n = pm.int16_lanes
    qa, qb = rng.integers(-128, 128, n), rng.integers(0, 256, n)
    da, db = qa - c.zero_a, qb - c.zero_b
    halves = []
    for high in (False, True):
        pair = np.concatenate([da, db])[requantize_pairs.in_lane_interleave(n, high)].reshape(-1, 2)
        t = pair @ [c.mult_a, c.mult_b]  # the pieces' sum: the model above checks it piece by piece
        halves.append(((t + (1 << (c.shift - 1))) >> c.shift) + c.zero_y)
    v = np.clip(_in_lanes(*halves, -2**15, 2**15 - 1, 4), c.lo, c.hi)
    got = _in_lanes(v, v, 0, 255, 8)[requantize_pairs.in_order(n, 1)]
    np.testing.assert_array_equal(got, int8_add.reference(qa, qb, c))


@dataclass
class _Fused:
    """What isa_devices.run reads of a kernel: the inputs after x (the other branch, then the
    layer's constants) and the output."""

    primitive: str
    consts: list
    out_shape: tuple
    out_dtype: str


def _fused(cls, width, seed):
    """A 16-channel 3x3 ternary conv over a (1, 16, 6, width) input plus a residual branch
    (uint8 -> uint8 after ReLU, ResNet-44's form), built for `cls`: (lowered, add, library)."""
    layer = make_layer(np.random.default_rng(seed), "conv2d", "ternary", (16, 16, 3, 3), pad=1, out="int8", act=None)
    in_shape = (1, 16, 6, width)
    lowered = primitives.lower_layer(layer, in_shape, "delta", cls)
    add = int8_add.fit((layer.out.scale, 0, "int8"), (0.9 * layer.out.scale, 3, "uint8"),
                       (1.7 * layer.out.scale, 0, "uint8"), 0.0, None)
    x = te.placeholder(in_shape, "uint8", "x")
    other = te.placeholder(lowered.out_shape, "uint8", "other")
    consts = [te.placeholder(v.shape, str(v.dtype), f"c{i}") for i, v in enumerate(lowered.consts)]
    tgt = targets.tvm_target(isa_devices.preset(cls))
    func = schedule_func(te.create_prim_func([x, other, *consts, lowered.te_add(x, other, add, *consts)]), tgt)
    return layer, lowered, add, tvm.tirx.build(tvm.IRModule({"main": func}), target=tgt)


def _vectors_taken(monkeypatch) -> list:
    taken, real = [], int8_add_pairs.te_vector
    monkeypatch.setattr(int8_add_pairs, "te_vector", lambda *a: taken.append(a[0].int16_lanes) or real(*a))
    return taken


@pytest.mark.parametrize("cls", [pytest.param(isa.get(n), id=n) for n in isa.X86_CLASSES])
@pytest.mark.parametrize("width", [32, 16, 24], ids=["32 columns", "16 columns", "int32 form"])
def test_fused_residual_add_bit_exact(cls, width, monkeypatch):
    """The delta conv's tasks add the other branch to the rows they write: in pairs where a row
    is whole int16 vectors (32 columns: one zmm or two ymm; 16: one ymm on every x86 class), in
    int32 where it is not (24), and bit-exact against the conv's reference then int8_add's,
    random and saturated codes."""
    taken = _vectors_taken(monkeypatch)
    layer, lowered, add, lib = _fused(cls, width, 4)
    lanes = {32: min(32, requantize_pairs.for_class(cls).int16_lanes), 16: 16, 24: None}[width]
    assert set(taken) == ({lanes} if lanes else set())
    rng = np.random.default_rng(5)
    other = random_input(rng, "uint8", lowered.out_shape)
    inputs = [random_input(rng, "uint8", lowered.in_shape), random_input(rng, "uint8", lowered.in_shape, True)]
    kernel = _Fused(lowered.primitive, [other, *lowered.consts], lowered.out_shape, "uint8")
    outs = isa_devices.run(cls, kernel, lib, inputs)
    if outs is None:
        return  # an x86 class this CPU lacks: built (the spy saw the pair form) only
    for qx, got in zip(inputs, outs):
        np.testing.assert_array_equal(got, int8_add.reference(lowered.reference(qx), other, add))
    assert len(np.unique(outs[0])) > 20


@pytest.mark.parametrize("name", isa.ARM_CLASSES)
def test_arm_classes_keep_the_int32_form(name, monkeypatch):
    taken = _vectors_taken(monkeypatch)
    _fused(isa.get(name), 32, 4)
    assert not taken
