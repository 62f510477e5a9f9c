"""Quantized add, integer only: two 8-bit tensors (a residual connection's branches) summed and
requantized to the next 8-bit activation, its ReLU/Clip included.

ONNX's QDQ form of it is quantize(act(dequantize(q_a) + dequantize(q_b))), which TVM runs in
float32: two conversions, a division and a float round per element (3.2 us for ResNet-44's
16x32x32 sums on one znver4 core, 21 of them a call). Here, as the layers' epilogue does
(requantize.py, Jacob et al.):

    t   = M_a * (q_a - z_a) + M_b * (q_b - z_b) + 2^(shift-1)        in int32
    q_y = clamp((t >> shift) + z_y, lo, hi)

with M = round(2^shift * s_in / s_y) and the largest shift for which t cannot leave int32 at
the codes' extremes: M has 20-22 bits for scales within a factor of 4 of each other, so the
multipliers' rounding moves no output by more than (|q_a - z_a| + |q_b - z_b|) / 2^(shift+1),
about 1/8000 of a code; it differs from float rounding only for sums that lie that close to a
rounding boundary (and at exact ties, which it rounds up where ONNX rounds to even).
ReLU/Clip fold into lo/hi: round is monotone, so clamping after rounding equals clipping before.

The compute is elementwise, so TVM's elementwise default schedule (schedules/tvm_ops.py:
inlined, fused, vectorized) runs it: 1.5 us for the same sums. Where one branch is a conv kernel's
output read by nothing else, the add is a last stage of that kernel instead (passes/integer_add.py;
its block's role RESIDUAL: the conv's schedule inlines the crop into it); the delta convs' tasks
add it to the rows they write, on x86 in int16 pairs (int8_add_pairs.py: the same integers).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import roles

INT32_LIMIT = 2**31
MAX_SHIFT = 30
# fit() refuses constants whose rounding could move an output by more than this many codes
# (an input scale more than ~128 times the output's leaves too few bits of shift): TVM's float
# kernel then stays.
MAX_ERROR = 2.0**-8


@dataclass(frozen=True)
class AddConsts:
    """The integer constants of one quantized add."""

    mult_a: int
    zero_a: int
    mult_b: int
    zero_b: int
    shift: int
    zero_y: int
    lo: int
    hi: int
    out_dtype: str


def _extent(dtype: str, zero: int) -> int:
    info = np.iinfo(dtype)
    return max(abs(int(info.min) - zero), abs(int(info.max) - zero))


def _code(value: float, scale: float, zero: int) -> int:
    """The output code of a float bound, as QuantizeLinear rounds it (half to even)."""
    return int(np.rint(np.float64(value) / np.float64(scale))) + zero


def fit(a: tuple, b: tuple, y: tuple, act_lo: float | None = None, act_hi: float | None = None) -> AddConsts | None:
    """Constants for q_y = quantize(act(dequantize(q_a) + dequantize(q_b))); a, b, y are
    (scale, zero point, 8-bit dtype); act_lo/act_hi the ReLU/Clip bounds in float. None where no
    int32 form is accurate to MAX_ERROR codes."""
    (sa, za, da), (sb, zb, db), (sy, zy, dy) = a, b, y
    if min(sa, sb, sy) <= 0 or not all(np.isfinite([sa, sb, sy])):
        return None
    ra, rb = np.float64(sa) / np.float64(sy), np.float64(sb) / np.float64(sy)
    ea, eb = _extent(da, za), _extent(db, zb)
    for shift in range(MAX_SHIFT, 0, -1):
        ma, mb = int(np.rint(ra * 2.0**shift)), int(np.rint(rb * 2.0**shift))
        if ma * ea + mb * eb + (1 << (shift - 1)) < INT32_LIMIT:
            break
    else:
        return None
    error = (abs(ma - ra * 2.0**shift) * ea + abs(mb - rb * 2.0**shift) * eb) / 2.0**shift
    if error > MAX_ERROR:
        return None
    info = np.iinfo(dy)
    lo, hi = int(info.min), int(info.max)
    if act_lo is not None and np.isfinite(act_lo):
        lo = max(lo, _code(act_lo, sy, zy))
    if act_hi is not None and np.isfinite(act_hi):
        hi = min(hi, _code(act_hi, sy, zy))
    if lo > hi:
        return None
    return AddConsts(ma, int(za), mb, int(zb), shift, int(zy), lo, hi, str(dy))


def value(qa, qb, c: AddConsts):
    """The sum of two codes (TE or TIR expressions), requantized: the output code."""
    from tvm import te, tirx

    def i32(v):
        return tirx.const(v, "int32")

    t = ((qa.astype("int32") - i32(c.zero_a)) * i32(c.mult_a)
         + (qb.astype("int32") - i32(c.zero_b)) * i32(c.mult_b) + i32(1 << (c.shift - 1)))
    v = tirx.shift_right(t, i32(c.shift)) + i32(c.zero_y)
    return te.max(te.min(v, i32(c.hi)), i32(c.lo)).astype(c.out_dtype)


def compute(a, b, c: AddConsts):
    """TE definition: a, b 8-bit tensors of one shape; the constants are immediates."""
    from tvm import te

    return te.compute(a.shape, lambda *i: value(a(*i), b(*i), c), name="int8_add", attrs=roles.attrs(roles.RESIDUAL))


def reference(qa: np.ndarray, qb: np.ndarray, c: AddConsts) -> np.ndarray:
    """numpy: the same integer arithmetic in int64."""
    t = (qa.astype(np.int64) - c.zero_a) * c.mult_a + (qb.astype(np.int64) - c.zero_b) * c.mult_b + (1 << (c.shift - 1))
    return np.clip((t >> c.shift) + c.zero_y, c.lo, c.hi).astype(c.out_dtype)


def float_semantics(qa, qb, a: tuple, b: tuple, y: tuple, act_lo=None, act_hi=None) -> np.ndarray:
    """ONNX's QDQ form in float64 (DequantizeLinear, Add, ReLU/Clip, QuantizeLinear), the
    codes before saturation's clip removed: what the integer form approximates."""
    x = (qa.astype(np.float64) - a[1]) * a[0] + (qb.astype(np.float64) - b[1]) * b[0]
    x = np.clip(x, -np.inf if act_lo is None else act_lo, np.inf if act_hi is None else act_hi)
    info = np.iinfo(y[2])
    return np.clip(np.rint(x / y[0]) + y[1], info.min, info.max).astype(np.int64)
