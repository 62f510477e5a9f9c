"""The epilogue every primitive shares: integer accumulators -> next layer's 8-bit activation.

Integer-only requantization (Jacob et al.). For output channel c, with accumulators acc_p, acc_n
(sums of input codes q over the +1 and -1 weights; int8 layers: acc_p = sum q*w, acc_n absent):

    v = (M_p[c] * acc_p - M_n[c] * acc_n + B[c]) >> shift        in int64
    q_y = clamp(v, lo, hi)

M = round(2^shift * s_x * w / s_y) and B folds the bias, the output zero point, the input zero
point correction (padding is filled with zp_x, so every tap contributes q - zp_x) and the
rounding constant 2^(shift-1) (round half up). ReLU/Clip and saturation are folded into lo/hi:
round is monotone, so clamping after rounding equals clipping before it.

The kernels evaluate that formula exactly, in one of three forms (the numpy reference is the
int64 formula itself):
- int32 in one piece, where a shorter multiplier fits: v = (M_p*acc_p - M_n*acc_n + B) >> shift
  with every partial sum inside int32, 2 vector multiplies per output (see ONE_PIECE_ERROR);
- int32 in pieces, where the layer's accumulator bounds allow (16-bit accumulators: two pieces;
  int8 layers' wider ones: three): with each of M and B split into k pieces of L bits,
  M = sum_i M_i 2^(iL) (the low pieces in [0, 2^L)),
      Y_0 = M_p0*acc_p - M_n0*acc_n + B_0,   Y_i = M_pi*acc_p - M_ni*acc_n + B_i + (Y_{i-1} >> L),
      v = Y_{k-1} >> (shift - (k-1)L)
  equals the formula for any integers (floor division nests), and (k, L) are chosen so that no
  partial sum leaves int32: 2k vector multiplies and k shifts per output, 16 lanes per AVX-512
  vector. Measured: the float64 form was a third of SVHN conv2's sparse kernel on znver5;
- float64 otherwise: every term an integer below 2^53 (checked when the constants are fitted,
  by lowering the shift if needed), so each product and sum is exact and floor(v * 2^-shift)
  equals the arithmetic shift, bit for bit (x86 without AVX-512 has no 64-bit integer
  multiply; double-precision FMA is one instruction).
Each computes the formula's integers from the fitted constants: which one runs never changes an output
(fit() chooses the one-piece form's shorter constants, before any form is picked).

The last layer (float output) ends in a float epilogue instead: y = acc_p*S_p - acc_n*S_n + b with
float32 constants, evaluated in float64 and rounded to float32 once: acc (below 2^29) times a
float32 is exact in float64, so whether LLVM contracts a product and a sum into one FMA (it does on
some targets, not on others) cannot change the result, and x86 and aarch64 builds agree bit for bit.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..layer import QuantLayer

MAX_SHIFT = 40  # beyond this M's precision no longer improves; keeps B well inside int64
MULT_BITS = 31  # M < 2^31: M * acc (acc < 2^24 for K < 65536) stays inside int64
EXACT_BITS = 52  # |every term| < 2^52: exact in float64 (53-bit mantissa), with a bit to spare
INT32_LIMIT = 2**31  # the split int32 form: every partial sum's magnitude below this
MAX_PIECES = 3  # the int32 form splits each integer into at most this many pieces
PAIR_BITS = 15  # the pair form's low pieces: in [0, 2^15), int16 as they are and negated
# The one-piece int32 form: fit() lowers the shift (so M has fewer bits, ~16-18 on ResNet-44 and the
# SVHN ConvNet) until every partial sum fits int32, if the multipliers' rounding then moves no
# output by more than this many output codes at the accumulators' bounds (a requantized value
# nearer a rounding boundary than that can round the other way than with 31-bit multipliers).
# Measured on an AMD EPYC znver4 (AVX-512 build, one core), ResNet-44's 16-channel 3x3 layers:
# two pieces 6.5 us, one piece ~5 us, no epilogue at all 4.0 us: the four 32-bit vector
# multiplies per 16 outputs of the two-piece form were most of a small layer's epilogue.
# Ternary layers on uint8 codes bound their partial sums by the larger of the two signed terms,
# not their sum (_largest_sum's `nonneg`): one more bit of shift, and ResNet-44's layers in one
# piece went from 28 to 40 of 42 (its 64-channel layers: 2.7x the error bound before).
ONE_PIECE_ERROR = 2.0**-6


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
    acc_max: tuple | None = None  # integer form: per channel, the largest |acc_p| and |acc_n|
    acc_nonneg: bool = False  # integer form: acc_p, acc_n are sums of codes >= 0 (ternary, uint8 input)
    acc_offset: np.ndarray | None = None  # float form: int [Co] taken off acc_p first (shifted codes)
    acc_offset_n: np.ndarray | None = None  # float form: the same for acc_n (ternary dot form)
    # integer form: the kernel multiplies (acc_p, acc_n) pairs of int16 by (M_p, -M_n) pieces of
    # int16 in one instruction (requantize_pairs.py), so the int32 form's pieces must fit int16
    pairs: bool = False

    def _integers(self) -> list[np.ndarray]:
        return [self.mult_p] + ([self.mult_n] if self.mult_n is not None else []) + [self.bias]

    def _offsets(self) -> tuple:
        return self.acc_offset, self.acc_offset_n

    def sum_fits_int32(self) -> bool:
        """Whether M_p*acc_p - M_n*acc_n + B and its partial sums stay inside int32 over the
        accumulators' bounds (the one-piece int32 form)."""
        if not self.integer or self.acc_max is None:
            return False
        accs = [np.asarray(a, np.int64) for a in self.acc_max][: 2 if self.mult_n is not None else 1]
        return _largest_sum(self.mult_p, self.mult_n, self.bias, *accs, nonneg=self.acc_nonneg) < INT32_LIMIT

    def split_form(self) -> tuple[int, int] | None:
        """(pieces k, bits L) of the int32 form, the fewest pieces whose partial sums all stay
        inside int32 by the accumulator bounds; None: the float64 form."""
        if not self.integer or self.acc_max is None:
            return None
        accs = [np.asarray(a, np.int64) for a in self.acc_max][: 2 if self.mult_n is not None else 1]
        mults = [m for m in (self.mult_p, self.mult_n) if m is not None]
        if self.sum_fits_int32() and (not self.pairs or all(_fits_int16(m) for m in mults)):
            return 1, 0
        for k in range(2, MAX_PIECES + 1):
            for bits in range(1, min(self.shift // (k - 1), PAIR_BITS if self.pairs else 30) + 1):
                if self.pairs and not all(_fits_int16(pieces(m, bits, k)[-1]) for m in mults):
                    continue
                carry = 0
                for i in range(k):
                    y = sum(a * np.abs(pieces(m, bits, k)[i]) for a, m in zip(accs, mults))
                    y = y + np.abs(pieces(self.bias, bits, k)[i]) + carry
                    if y.max() >= INT32_LIMIT:
                        break
                    carry = (y >> bits) + 1
                else:
                    return k, bits
        return None

    def in_pairs(self) -> "Epilogue":
        """This epilogue for a kernel that multiplies int16 accumulator pairs (requantize_pairs):
        the same integers, pieces that fit int16; itself where there are none."""
        paired = replace(self, pairs=True)
        return paired if self.integer and self.mult_n is not None and paired.split_form() is not None else self

    def consts(self) -> list[np.ndarray]:
        """What the kernel reads: for the int32 form the k pieces of each integer (M_p, [M_n,] B),
        low to high, else float64 copies of the (exactly representable) integers."""
        if not self.integer:
            return self._integers() + [o.astype(np.int32) for o in self._offsets() if o is not None]
        form = self.split_form()
        if form is None:
            return [a.astype(np.float64) for a in self._integers()]
        return [p.astype(np.int32) for a in self._integers() for p in pieces(a, form[1], form[0])]


def _fits_int16(a: np.ndarray) -> bool:
    """Every value and its negation within int16 (a multiplier piece of the pair form)."""
    return bool(np.abs(a).max(initial=0) < 2**15)


def _largest_sum(mult_p, mult_n, bias, acc_p_max, acc_n_max=None, nonneg=False) -> int:
    """The largest |partial sum| of M_p*acc_p - M_n*acc_n + B (evaluated in that order) over the
    accumulators' bounds. `nonneg`: the accumulators lie in [0, max] (sums of codes >= 0) and the
    multipliers are >= 0, so the terms have opposite signs: M_p*acc_p - M_n*acc_n lies in
    [-M_n*acc_n_max, M_p*acc_p_max] rather than within the sum of both magnitudes, a bit less
    (one more bit of shift for the one-piece int32 form: ResNet-44's 64-channel layers fit it)."""
    if nonneg and np.all(mult_p >= 0) and (mult_n is None or np.all(mult_n >= 0)):
        top = mult_p * acc_p_max
        low = -mult_n * acc_n_max if mult_n is not None else np.zeros_like(top)
        parts = [top, low, top + bias, low + bias]
        return int(max(np.abs(p).max() for p in parts))
    bound = np.abs(mult_p) * acc_p_max + np.abs(bias)
    if mult_n is not None:
        bound = bound + np.abs(mult_n) * acc_n_max
    return int(bound.max())


def _scaled(ratio_p, ratio_n, b_real, zp_y: int, shift: int) -> tuple:
    """(M_p, M_n, B) at `shift`: the multipliers and the bias in output codes, times 2^shift, with
    the output zero point and the rounding constant folded into B."""
    scale = float(2**shift)
    mult_p = np.round(ratio_p * scale).astype(np.int64)
    mult_n = None if ratio_n is None else np.round(ratio_n * scale).astype(np.int64)
    return mult_p, mult_n, np.round(b_real * scale).astype(np.int64) + (zp_y << shift) + (1 << (shift - 1))


def _one_piece(real: tuple, acc_p_max, acc_n_max, shift: int, nonneg: bool) -> tuple | None:
    """(shift, (M_p, M_n, B)) at the largest shift <= `shift` whose constants keep the one-piece
    int32 form inside int32, if the multipliers' rounding error at that shift stays within
    ONE_PIECE_ERROR output codes (each M and B is off its real value by at most 1/2: the output
    by that times the accumulators, over 2^shift); None otherwise."""
    n_max = acc_n_max if real[1] is not None else 0
    for s in range(shift, 0, -1):
        consts = _scaled(*real, s)
        if _largest_sum(*consts, acc_p_max, acc_n_max, nonneg=nonneg) < INT32_LIMIT:
            worst = 0.5 * (acc_p_max + n_max + 1) / float(2**s)
            return (s, consts) if np.max(worst) <= ONE_PIECE_ERROR else None
    return None


def pieces(a: np.ndarray, bits: int, k: int) -> list[np.ndarray]:
    """a = sum_i pieces[i] * 2^(i*bits): the low k-1 pieces in [0, 2^bits), the top one signed."""
    return [(a >> (i * bits)) & ((1 << bits) - 1) for i in range(k - 1)] + [a >> ((k - 1) * bits)]


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


def fit(layer: QuantLayer, code_max: int | None = None) -> Epilogue:
    """Epilogue constants of a layer (from its float parameters, once, at compile time).
    `code_max`: the largest |input code| (default the input type's, 255 or 128): the
    accumulators' bounds, which decide the int32 form's pieces (XNOR layers: codes +-1)."""
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
    in_max = code_max if code_max is not None else 255 if layer.in_dtype == "uint8" else 128
    acc_p_max, acc_n_max = (in_max * n for n in _abs_counts(layer))
    real = (s_x * wp / s_y, None if wn is None else s_x * wn / s_y, b / s_y, zp_y)  # M, B before scaling
    while True:
        shift = max(shift, 1)
        mult_p, mult_n, bias = _scaled(*real, shift)
        if _largest_sum(mult_p, mult_n, bias, acc_p_max, acc_n_max) < 2**EXACT_BITS or shift == 1:
            break
        shift -= 1
    nonneg = layer.weight_kind == "ternary" and layer.in_dtype == "uint8"
    short = _one_piece(real, acc_p_max, acc_n_max, shift, nonneg)
    if short is not None:
        shift, (mult_p, mult_n, bias) = short
    info = np.iinfo(layer.out.dtype)
    lo, hi = int(info.min), int(info.max)
    if np.isfinite(layer.act_lo):
        lo = max(lo, zp_y + int(np.round(layer.act_lo / s_y)))
    if np.isfinite(layer.act_hi):
        hi = min(hi, zp_y + int(np.round(layer.act_hi / s_y)))
    return Epilogue(True, mult_p, mult_n, bias, shift, lo, hi, layer.out.dtype, acc_max=(acc_p_max, acc_n_max),
                    acc_nonneg=nonneg)


# -- TE form ---------------------------------------------------------------------------------
def te_apply(epi: Epilogue, acc_p, acc_n, consts, index_channel):
    """Element expression of the epilogue: accumulator tensors -> output value (TE)."""

    def expr(idx):
        a_n = acc_n(*idx) if epi.mult_n is not None else None
        return te_value(epi, consts, index_channel(idx), acc_p(*idx), a_n)

    return expr


def te_value(epi: Epilogue, consts, c, a_p, a_n):
    """The epilogue of channel c's accumulator values a_p, a_n (expressions; a_n None for layers
    without one): the output value (TE or TIR: consts are tensors or buffers indexed by c)."""
    from tvm import te, tirx

    form = epi.split_form()
    mp, *rest = consts
    mn, b = (rest[0], rest[1]) if epi.mult_n is not None else (None, rest[0])
    extra = iter(consts[len(epi._integers()):] if not epi.integer else ())
    off_p, off_n = (None if o is None else next(extra) for o in epi._offsets())

    if not epi.integer:  # in float64: the products are exact, so FMA contraction changes nothing
        a = a_p if off_p is None else a_p - off_p[c]  # exact, in the integers
        y = a.astype("float64") * mp[c].astype("float64")
        if mn is not None:
            a_n = a_n if off_n is None else a_n - off_n[c]
            y = y - a_n.astype("float64") * mn[c].astype("float64")
        y = y + b[c].astype("float64")
        if np.isfinite(epi.act_lo):
            y = te.max(y, tirx.const(epi.act_lo, "float64"))
        if np.isfinite(epi.act_hi):
            y = te.min(y, tirx.const(epi.act_hi, "float64"))
        return y.astype("float32")
    if form is not None:  # int32 in k pieces (see the module docstring): no partial sum overflows
        k, bits = form

        def term(i):  # piece i of M_p * acc_p - M_n * acc_n + B
            t = a_p.astype("int32") * consts[i][c]
            if mn is not None:
                t = t - a_n.astype("int32") * consts[k + i][c]
            return t + consts[len(consts) - k + i][c]

        y = term(0)
        for i in range(1, k):
            y = term(i) + tirx.shift_right(y, tirx.const(bits, "int32"))
        v = tirx.shift_right(y, tirx.const(epi.shift - (k - 1) * bits, "int32"))
        v = te.max(te.min(v, tirx.const(epi.hi, "int32")), tirx.const(epi.lo, "int32"))
        return v.astype(epi.out_dtype)
    # exact integer arithmetic carried in float64 (see the module docstring)
    v = a_p.astype("float64") * mp[c]
    if mn is not None:
        v = v - a_n.astype("float64") * mn[c]
    v = tirx.floor((v + b[c]) * tirx.const(2.0**-epi.shift, "float64"))
    v = te.max(te.min(v, tirx.const(epi.hi, "float64")), tirx.const(epi.lo, "float64"))
    return v.astype("int32").astype(epi.out_dtype)


def np_apply(epi: Epilogue, acc_p: np.ndarray, acc_n: np.ndarray | None, channel_axis: int) -> np.ndarray:
    """The same epilogue in numpy, with the same integer (or float32) arithmetic."""
    shape = [1] * acc_p.ndim
    shape[channel_axis] = -1

    def ch(a):
        return a.reshape(shape)

    if not epi.integer:  # float64 as the kernels: exact products, one rounding per sum
        a = acc_p if epi.acc_offset is None else acc_p.astype(np.int64) - ch(epi.acc_offset)
        y = a.astype(np.float64) * ch(epi.mult_p).astype(np.float64)
        if epi.mult_n is not None:
            a_n = acc_n if epi.acc_offset_n is None else acc_n.astype(np.int64) - ch(epi.acc_offset_n)
            y = y - a_n.astype(np.float64) * ch(epi.mult_n).astype(np.float64)
        y = y + ch(epi.bias).astype(np.float64)
        return np.clip(y, epi.act_lo, epi.act_hi).astype(np.float32)
    v = acc_p.astype(np.int64) * ch(epi.mult_p)
    if epi.mult_n is not None:
        v = v - acc_n.astype(np.int64) * ch(epi.mult_n)
    v = (v + ch(epi.bias)) >> epi.shift
    return np.clip(v, epi.lo, epi.hi).astype(epi.out_dtype)
