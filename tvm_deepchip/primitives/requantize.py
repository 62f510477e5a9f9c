"""The epilogue every primitive shares: integer accumulators -> next layer's 8-bit activation.

Integer-only requantization (Jacob et al.). For output channel c, with accumulators acc_p, acc_n
(sums of input codes q over the +1 and -1 weights; int8 layers: acc_p = sum q*w, acc_n absent):

    v = (M_p[c] * acc_p - M_n[c] * acc_n + B[c]) >> shift        in int64
    q_y = clamp(v, lo, hi)

M = round(2^shift * s_x * w / s_y) and B folds the bias, the output zero point, the input zero
point correction (padding is filled with zp_x, so every tap contributes q - zp_x) and the
rounding constant 2^(shift-1) (round half up). ReLU/Clip and saturation are folded into lo/hi:
round is monotone, so clamping after rounding equals clipping before it.

The kernels evaluate that formula in one of two forms, both exact, chosen when the constants
are fitted (the numpy reference is the same int64 formula for both):
- int32 ("narrow"), when the largest |M_p*acc_p| + |M_n*acc_n| + |B| fits in 31 bits with M still
  NARROW_MULT_BITS bits precise (most ternary layers: 16-bit accumulators): one vector multiply
  and an arithmetic shift per output, 16 lanes per AVX-512 vector. Measured: the float64 form was
  a third of SVHN conv2's sparse kernel on znver5 (converts, 8 lanes per vector);
- float64 otherwise: every term an integer below 2^53 (the shift lowered if needed), so each
  product and sum is exact and floor(v * 2^-shift) equals the arithmetic shift, bit for bit
  (x86 without AVX-512 has no 64-bit integer multiply; double-precision FMA is one instruction).
With M at least 2^NARROW_MULT_BITS, M's rounding moves v by at most 255 / 2^16 of a step.

The last layer (float output) ends in a float32 epilogue instead: y = acc_p*S_p - acc_n*S_n + b.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..layer import QuantLayer

MAX_SHIFT = 40  # beyond this M's precision no longer improves; keeps B well inside int64
MULT_BITS = 31  # M < 2^31: M * acc (acc < 2^24 for K < 65536) stays inside int64
EXACT_BITS = 52  # |every term| < 2^52: exact in float64 (53-bit mantissa), with a bit to spare
NARROW_BITS = 31  # the int32 form: |every partial sum| < 2^31
NARROW_MULT_BITS = 15  # ... and only while the largest multiplier keeps this many bits


@dataclass
class Epilogue:
    """Constants of the epilogue of one layer (integer or float form)."""

    integer: bool
    mult_p: np.ndarray  # int64 [Co] (integer) or float32 [Co] (float)
    mult_n: np.ndarray | None
    bias: np.ndarray  # int64 [Co] (with zp_y << shift and rounding) or float32 [Co]
    shift: int = 0
    lo: int = 0
    hi: int = 0
    out_dtype: str = "float32"
    act_lo: float = -np.inf  # float epilogue only: ReLU/Clip of the float output
    act_hi: float = np.inf
    narrow: bool = False  # integer form in int32 (else float64)
    acc_bound: int = 0  # max over channels of |M_p|*max|acc_p| + |M_n|*max|acc_n| (integer form)

    def consts(self) -> list[np.ndarray]:
        """What the kernel reads: int32, or float64 copies of the (exactly representable) integers."""
        arrays = [self.mult_p] + ([self.mult_n] if self.mult_n is not None else []) + [self.bias]
        if not self.integer:
            return arrays
        return [a.astype(np.int32 if self.narrow else np.float64) for a in arrays]

    def fits_narrow(self) -> bool:
        """Whether every partial sum of the int32 form stays inside int32 (with this bias)."""
        return int(self.acc_bound) + int(np.abs(self.bias).max(initial=0)) < 2**NARROW_BITS


def tap_counts(layer: QuantLayer) -> tuple[np.ndarray, np.ndarray]:
    """Per output channel: how many +1 and -1 weights (ternary) or sum of weights (int8, in [0])."""
    s = layer.codes.reshape(layer.out_channels, -1).astype(np.int64)
    if layer.weight_kind == "int8":
        return s.sum(1), np.zeros(len(s), np.int64)
    return (s > 0).sum(1), (s < 0).sum(1)


def _abs_counts(layer: QuantLayer) -> tuple[np.ndarray, np.ndarray]:
    """Per channel, the largest |acc| per input unit: tap counts (ternary) or sum |w| (int8)."""
    s = layer.codes.reshape(layer.out_channels, -1).astype(np.int64)
    if layer.weight_kind == "int8":
        return np.abs(s).sum(1), np.zeros(len(s), np.int64)
    return (s > 0).sum(1), (s < 0).sum(1)


def fit(layer: QuantLayer, allow_narrow: bool = True) -> Epilogue:
    """Epilogue constants of a layer (from its float parameters, once, at compile time)."""
    co = layer.out_channels
    s_x, zp_x = float(layer.in_scale), int(layer.in_zero_point)
    if layer.weight_kind == "ternary":
        wp, wn = (np.broadcast_to(np.asarray(a, np.float64), (co,)) for a in (layer.wp, layer.wn))
    else:
        wp, wn = np.asarray(layer.w_scale, np.float64).reshape(co), None
    n_p, n_n = tap_counts(layer)
    # real-valued bias seen by the integer sum: b - s_x * zp_x * (wp*n_p - wn*n_n)
    corr = wp * n_p - (wn * n_n if wn is not None else 0)
    b = layer.bias.astype(np.float64) - s_x * zp_x * corr
    if layer.out is None:
        return Epilogue(
            False,
            (s_x * wp).astype(np.float32),
            None if wn is None else (s_x * wn).astype(np.float32),
            b.astype(np.float32),
            act_lo=float(layer.act_lo),
            act_hi=float(layer.act_hi),
        )
    s_y, zp_y = float(layer.out.scale), int(layer.out.zero_point)
    ratios = s_x * np.concatenate([wp] + ([wn] if wn is not None else [])) / s_y
    top = float(ratios.max()) if ratios.size and ratios.max() > 0 else 1.0
    shift = int(min(MAX_SHIFT, MULT_BITS - 1 - np.floor(np.log2(top))))
    in_max = 255 if layer.in_dtype == "uint8" else 128
    acc_p_max, acc_n_max = (in_max * n for n in _abs_counts(layer))
    wide = None
    while True:  # lower the shift until the float64 form is exact, then until the int32 one is
        shift = max(shift, 1)
        scale = float(2**shift)
        mult_p = np.round(s_x * wp / s_y * scale).astype(np.int64)
        mult_n = None if wn is None else np.round(s_x * wn / s_y * scale).astype(np.int64)
        bias = np.round(b / s_y * scale).astype(np.int64) + (zp_y << shift) + (1 << (shift - 1))
        acc_bound = np.abs(mult_p) * acc_p_max + (np.abs(mult_n) * acc_n_max if wn is not None else 0)
        bound = int((acc_bound + np.abs(bias)).max())
        consts = (mult_p, mult_n, bias, shift, int(acc_bound.max()))
        if wide is None and (bound < 2**EXACT_BITS or shift == 1):
            wide = consts
        m_max = max(int(np.abs(m).max(initial=0)) for m in (mult_p, mult_n) if m is not None)
        if wide is not None and (m_max < 2**NARROW_MULT_BITS or not allow_narrow):
            consts, narrow = wide, False  # int32 would cost precision
            break
        if wide is not None and bound < 2**NARROW_BITS:
            narrow = True
            break
        if shift == 1:
            consts, narrow = wide, False
            break
        shift -= 1
    mult_p, mult_n, bias, shift, acc_bound = consts
    info = np.iinfo(layer.out.dtype)
    lo, hi = int(info.min), int(info.max)
    if np.isfinite(layer.act_lo):
        lo = max(lo, zp_y + int(np.round(layer.act_lo / s_y)))
    if np.isfinite(layer.act_hi):
        hi = min(hi, zp_y + int(np.round(layer.act_hi / s_y)))
    return Epilogue(True, mult_p, mult_n, bias, shift, lo, hi, layer.out.dtype, narrow=narrow, acc_bound=acc_bound)


# -- TE form ---------------------------------------------------------------------------------
def te_apply(epi: Epilogue, acc_p, acc_n, consts, index_channel):
    """Element expression of the epilogue: accumulator values -> output value (TE)."""
    from tvm import te, tirx

    mp, *rest = consts
    mn, b = (rest[0], rest[1]) if epi.mult_n is not None else (None, rest[0])

    def expr(idx):
        c = index_channel(idx)
        if not epi.integer:
            y = acc_p(*idx).astype("float32") * mp[c]
            if mn is not None:
                y = y - acc_n(*idx).astype("float32") * mn[c]
            y = y + b[c]
            if np.isfinite(epi.act_lo):
                y = te.max(y, tirx.const(epi.act_lo, "float32"))
            if np.isfinite(epi.act_hi):
                y = te.min(y, tirx.const(epi.act_hi, "float32"))
            return y
        if epi.narrow:  # int32: no partial sum overflows (fit's bound)
            v = acc_p(*idx).astype("int32") * mp[c]
            if mn is not None:
                v = v - acc_n(*idx).astype("int32") * mn[c]
            v = tirx.shift_right(v + b[c], tirx.const(epi.shift, "int32"))
            v = te.max(te.min(v, tirx.const(epi.hi, "int32")), tirx.const(epi.lo, "int32"))
            return v.astype(epi.out_dtype)
        # exact integer arithmetic carried in float64 (see the module docstring)
        v = acc_p(*idx).astype("float64") * mp[c]
        if mn is not None:
            v = v - acc_n(*idx).astype("float64") * mn[c]
        v = tirx.floor((v + b[c]) * tirx.const(2.0**-epi.shift, "float64"))
        v = te.max(te.min(v, tirx.const(epi.hi, "float64")), tirx.const(epi.lo, "float64"))
        return v.astype("int32").astype(epi.out_dtype)

    return expr


def np_apply(epi: Epilogue, acc_p: np.ndarray, acc_n: np.ndarray | None, channel_axis: int) -> np.ndarray:
    """The same epilogue in numpy, with the same integer (or float32) arithmetic."""
    shape = [1] * acc_p.ndim
    shape[channel_axis] = -1

    def ch(a):
        return a.reshape(shape)

    if not epi.integer:
        y = acc_p.astype(np.float32) * ch(epi.mult_p)
        if epi.mult_n is not None:
            y = y - acc_n.astype(np.float32) * ch(epi.mult_n)
        return np.clip(y + ch(epi.bias), np.float32(epi.act_lo), np.float32(epi.act_hi)).astype(np.float32)
    v = acc_p.astype(np.int64) * ch(epi.mult_p)
    if epi.mult_n is not None:
        v = v - acc_n.astype(np.int64) * ch(epi.mult_n)
    v = (v + ch(epi.bias)) >> epi.shift
    return np.clip(v, epi.lo, epi.hi).astype(epi.out_dtype)
