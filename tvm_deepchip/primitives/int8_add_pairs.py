"""The quantized add (int8_add) on x86 as int16 pair multiply-adds, for the residual adds the
delta convs' tasks apply to the rows they write (delta_rows).

int8_add's form is t = M_a * (q_a - z_a) + M_b * (q_b - z_b) + 2^(shift-1), two 32-bit multiplies
an output. x86 has no cheap one (an AMD EPYC znver1 issues a 256-bit vpmulld every 1.6 ns): in
ResNet-44's 16-channel 32x32 layers the fused add took 3.7 us of 15.4 (AVX2 build, two threads,
per-launch times of the whole model). Here, a vector of codes of each branch is widened to int16,
its zero point subtracted (|q - z| <= 255), the two interleaved within each 128-bit lane, and
each multiplier split in pieces that fit int16,

    M = M_hi * 2^PIECE_BITS + M_lo,    0 <= M_lo < 2^PIECE_BITS,

so that one vpmaddwd a piece against the broadcast pair (M_a piece, M_b piece) gives both
products and their sum: t = (T_hi << PIECE_BITS) + T_lo + 2^(shift-1), the same integer (every
partial value is a sum the int32 form's bound already holds: M_hi * 2^PIECE_BITS <= M). Then the
shift, + z_y in int32, vpackssdw (its saturation lies outside every 8-bit range, so the clamp
after it is the same), the clamp in int16 where the range is narrower than the type, and the
saturating pack to 8 bits. Same integers as int8_add.reference, so every output is the same.
Measured there (per-launch times of the whole model, medians of 3000 runs, two builds run one
after the other): those layers 15.4 -> 14.0 us, against 11.4-11.7 for the same layers without an add.
"""
from __future__ import annotations

import numpy as np

from . import requantize_pairs
from .int8_add import AddConsts
from .requantize_pairs import PairMadd, in_lane_interleave, pair_madd, to_codes

PIECE_BITS = 15
_INT16 = np.iinfo(np.int16)


def _fits(m: int) -> bool:
    return _INT16.min <= m <= _INT16.max


def piece_pairs(c: AddConsts) -> list[tuple[int, int]]:
    """(M_a piece, M_b piece), low first: the multipliers themselves where both fit int16, else
    (M mod 2^PIECE_BITS, M >> PIECE_BITS) of each."""
    if _fits(c.mult_a) and _fits(c.mult_b):
        return [(c.mult_a, c.mult_b)]
    low = (1 << PIECE_BITS) - 1
    return [(c.mult_a & low, c.mult_b & low), (c.mult_a >> PIECE_BITS, c.mult_b >> PIECE_BITS)]


def usable(c: AddConsts) -> bool:
    """Whether the add's multipliers split in int16 pieces (they do: fit() keeps them under
    2^31 / 255) and its output is 8-bit."""
    return c.out_dtype in ("uint8", "int8") and all(_fits(m) for p in piece_pairs(c) for m in p)


def for_row(pm: PairMadd | None, columns: int) -> PairMadd | None:
    """The widest of pm's forms (requantize_pairs.narrower) whose int16 lanes divide a row of
    `columns` outputs: ResNet-44's 16-wide rows take AVX2's on an AVX-512 machine. None: none do
    (or pm is None: not x86)."""
    forms = [] if pm is None else requantize_pairs.narrower(pm)
    return next((f for f in forms if columns % f.int16_lanes == 0), None)


def np_value(qa: np.ndarray, qb: np.ndarray, c: AddConsts) -> np.ndarray:
    """numpy model of the kernel's arithmetic (int16 differences, int32 pair sums, the pieces
    recombined high to low), checking that every int32 value it holds fits: for tests against
    int8_add.reference."""
    da = qa.astype(np.int64) - c.zero_a
    db = qb.astype(np.int64) - c.zero_b
    assert np.abs(da).max(initial=0) <= _INT16.max and np.abs(db).max(initial=0) <= _INT16.max
    t = None
    for ma, mb in reversed(piece_pairs(c)):
        term = da * ma + db * mb
        t = term if t is None else (t << PIECE_BITS) + term
        assert np.abs(t).max(initial=0) < 2**31
    t = t + (1 << (c.shift - 1))
    assert np.abs(t).max(initial=0) < 2**31
    y = (t >> c.shift) + c.zero_y
    y16 = np.clip(y, _INT16.min, _INT16.max)  # vpackssdw
    return np.clip(y16, c.lo, c.hi).astype(c.out_dtype)


def te_vector(pm: PairMadd, c: AddConsts, qa, qb):
    """The outputs (8-bit x pm.int16_lanes, in order) of two vectors of 8-bit codes (TIR
    expressions of pm.int16_lanes lanes each)."""
    from tvm import tirx

    n = pm.int16_lanes
    i32 = lambda v: tirx.Broadcast(tirx.const(v, "int32"), n // 2)  # noqa: E731
    diff = [q.astype(f"int16x{n}") - tirx.Broadcast(tirx.const(z, "int16"), n)
            for q, z in ((qa, c.zero_a), (qb, c.zero_b))]
    halves = []
    for high in (False, True):
        pair = tirx.Shuffle(diff, in_lane_interleave(n, high))
        t = None
        for ma, mb in reversed(piece_pairs(c)):  # lane 2j: a's piece, lane 2j+1: b's
            term = pair_madd(pm, pair, tirx.const((ma & 0xFFFF) | (mb << 16), "int32"))
            t = term if t is None else tirx.shift_left(t, i32(PIECE_BITS)) + term
        halves.append(tirx.shift_right(t + i32(1 << (c.shift - 1)), i32(c.shift)) + i32(c.zero_y))
    return to_codes(pm, [halves], c.lo, c.hi, c.out_dtype)
