"""Storage encodings of sparse ternary weights (the stored artifact, not what kernels read).

A ternary layer is its sign tensor S in {-1, 0, +1} (axis 0 = output channel) plus two floats per
output channel (Wp[c], Wn[c]); this module encodes S. Every encoding is self-describing (a header
with the shape, the encoding and its parameter) and round-trips exactly:

  packed2      2 bits per weight, 4 weights per byte (0 -> 00, +1 -> 01, -1 -> 10).
  bitmap_sign  one bit per weight (non-zero?) then one sign bit per non-zero.
  index_fixed  DeepChip's form: per output channel the list of +1 positions and the list of -1
               positions, each delta coded (gap to the previous position) in b-bit fields; the
               all-ones field is an escape meaning "add 2^b-1 and read another field". The counts
               are Elias-gamma coded. b is chosen per tensor.
  index_rice   the same lists with each gap Golomb-Rice coded (parameter k chosen per tensor).
  run_rice     the whole tensor as runs of zeros, each run Rice coded and followed by the sign bit
               of the non-zero ending it; the number of non-zeros is Elias-gamma coded first.

`entropy_bound_bits` is the Shannon bound of the empirical {-1, 0, +1} distribution (bits per
weight): no code of that i.i.d. source does better on average. `encoded_bits` counts the bits of
`encode`'s output (bytes, header included) without writing the stream, fast enough for AlexNet.
Decoders are plain reference code (a Python loop over codes).
"""
from __future__ import annotations

import math

import numpy as np

from .errors import InputError

ENCODINGS = ("packed2", "bitmap_sign", "index_fixed", "index_rice", "run_rice")
_ID = {name: i for i, name in enumerate(ENCODINGS)}
_FIXED_WIDTHS = range(1, 17)
_RICE_KS = range(0, 24)


def _signs(signs) -> np.ndarray:
    s = np.asarray(signs)
    if s.ndim == 0:
        raise InputError("ternary signs: need an array with an output-channel axis, got a scalar")
    if s.size and not np.isin(s, (-1, 0, 1)).all():
        bad = np.unique(s[~np.isin(s, (-1, 0, 1))])[:5]
        raise InputError(f"ternary signs of shape {s.shape}: values must be -1, 0 or +1, found {bad.tolist()}")
    return s.astype(np.int8)


def _rows(s: np.ndarray) -> np.ndarray:
    """[output channels, weights per channel]; a 1-D tensor is one channel."""
    return s.reshape(1, -1) if s.ndim == 1 else s.reshape(s.shape[0], -1)


def _header_bits(ndim: int) -> int:
    return 8 + 32 * ndim + 8 + 8  # ndim, dims, encoding id, parameter


def _gamma_len(x: np.ndarray) -> np.ndarray:
    """Elias-gamma code length of integers x >= 1."""
    x = np.asarray(x, dtype=np.int64)
    return 2 * (np.floor(np.log2(np.maximum(x, 1))).astype(np.int64)) + 1


def entropy_bound_bits(signs) -> float:
    """Shannon entropy of the empirical {-1, 0, +1} distribution, in bits per weight."""
    s = _signs(signs)
    if s.size == 0:
        return 0.0
    p = np.array([(s == v).sum() for v in (-1, 0, 1)], dtype=np.float64) / s.size
    p = p[p > 0]
    return max(0.0, float(-(p * np.log2(p)).sum()))


# --- gaps: what the delta codings code -------------------------------------------------------

def list_gaps(s2: np.ndarray, sign: int) -> tuple[np.ndarray, np.ndarray]:
    """Per channel counts and the gaps (position - previous - 1) of one sign's position list."""
    rows, cols = np.nonzero(s2 == sign)
    counts = np.bincount(rows, minlength=s2.shape[0])
    prev = np.empty_like(cols)
    if cols.size:
        prev[0] = -1
        prev[1:] = cols[:-1]
        prev[np.r_[True, rows[1:] != rows[:-1]]] = -1
    return counts, cols - prev - 1


def _run_gaps(s: np.ndarray) -> np.ndarray:
    pos = np.flatnonzero(s.ravel())
    return pos - np.r_[-1, pos[:-1]] - 1


def _fixed_cost(gaps: np.ndarray, b: int) -> int:
    return int(b * (gaps // ((1 << b) - 1) + 1).sum())


def _rice_cost(gaps: np.ndarray, k: int) -> int:
    return int(((gaps >> k) + 1 + k).sum())


def _payload_bits(s: np.ndarray, encoding: str, param: int | None) -> tuple[int, int]:
    """(bits after the header, parameter used); param None picks the cheapest."""
    n, nnz = s.size, int(np.count_nonzero(s))
    if encoding == "packed2":
        return 2 * n, 0
    if encoding == "bitmap_sign":
        return n + nnz, 0
    if encoding in ("index_fixed", "index_rice"):
        s2 = _rows(s)
        (cp, gp), (cn, gn) = list_gaps(s2, 1), list_gaps(s2, -1)
        gaps = np.concatenate([gp, gn])
        counts = int(_gamma_len(cp + 1).sum() + _gamma_len(cn + 1).sum())
        cost, grid = (_fixed_cost, _FIXED_WIDTHS) if encoding == "index_fixed" else (_rice_cost, _RICE_KS)
        choices = [param] if param is not None else grid
        best = min(choices, key=lambda p: cost(gaps, p))
        return counts + cost(gaps, best), best
    if encoding == "run_rice":
        gaps = _run_gaps(s)
        choices = [param] if param is not None else _RICE_KS
        best = min(choices, key=lambda k: _rice_cost(gaps, k))
        return int(_gamma_len(nnz + 1)) + _rice_cost(gaps, best) + nnz, best
    raise InputError(f"unknown encoding {encoding!r}; choose one of {', '.join(ENCODINGS)}")


def encoded_bits(signs, encoding: str, param: int | None = None) -> int:
    """Size in bits of `encode(signs, encoding, param)` (whole bytes, header included)."""
    s = _signs(signs)
    payload, _ = _payload_bits(s, encoding, param)
    return 8 * math.ceil((_header_bits(s.ndim) + payload) / 8)


# --- writing ------------------------------------------------------------------------------

def _uint(values, width: int) -> np.ndarray:
    v = np.asarray(values, dtype=np.uint64).reshape(-1, 1)
    if width == 0:
        return np.zeros(0, np.uint8)
    return ((v >> np.arange(width - 1, -1, -1, dtype=np.uint64)) & np.uint64(1)).astype(np.uint8).ravel()


def _gamma(x: int) -> np.ndarray:
    nb = int(x).bit_length()
    return np.concatenate([np.zeros(nb - 1, np.uint8), _uint([x], nb)])


def _rice(gaps: np.ndarray, k: int, tail: np.ndarray | None = None) -> np.ndarray:
    """Rice codes (q ones, a zero, k remainder bits) of gaps, each followed by tail bit if given."""
    gaps = np.asarray(gaps, dtype=np.int64)
    q = gaps >> k
    t = 0 if tail is None else 1
    lens = q + 1 + k + t
    starts = np.cumsum(lens) - lens
    bits = np.zeros(int(lens.sum()), np.uint8)
    ones = np.repeat(starts, q) + (np.arange(int(q.sum())) - np.repeat(np.cumsum(q) - q, q))
    bits[ones] = 1
    for j in range(k):  # remainder, most significant bit first
        bits[starts + q + 1 + j] = (gaps >> (k - 1 - j)) & 1
    if tail is not None:
        bits[starts + q + 1 + k] = tail
    return bits


def _fixed(gaps: np.ndarray, b: int) -> np.ndarray:
    esc = (1 << b) - 1
    q = np.asarray(gaps, dtype=np.int64) // esc
    order = np.cumsum(q + 1) - 1  # where each gap's final field goes
    out = np.full(int((q + 1).sum()), esc, dtype=np.int64)
    out[order] = np.asarray(gaps) % esc
    return _uint(out, b)


def encode(signs, encoding: str, param: int | None = None) -> bytes:
    """Encode a {-1, 0, +1} tensor (axis 0 = output channel); param None picks the best."""
    s = _signs(signs)
    _, param = _payload_bits(s, encoding, param)
    parts = [_uint([s.ndim], 8), _uint(list(s.shape), 32), _uint([_ID[encoding]], 8), _uint([param], 8)]
    flat = s.ravel()
    if encoding == "packed2":
        parts.append(_uint(np.where(flat < 0, 2, flat), 2))
    elif encoding == "bitmap_sign":
        parts += [(flat != 0).astype(np.uint8), (flat[flat != 0] < 0).astype(np.uint8)]
    elif encoding in ("index_fixed", "index_rice"):
        code = (lambda g: _fixed(g, param)) if encoding == "index_fixed" else (lambda g: _rice(g, param))
        for row in _rows(s):
            for sign in (1, -1):
                counts, gaps = list_gaps(row[None], sign)
                parts += [_gamma(int(counts[0]) + 1), code(gaps)]
    else:  # run_rice
        nz = flat[flat != 0]
        parts += [_gamma(len(nz) + 1), _rice(_run_gaps(s), param, tail=(nz < 0).astype(np.uint8))]
    return np.packbits(np.concatenate(parts)).tobytes()


# --- reading ------------------------------------------------------------------------------

class _Reader:
    def __init__(self, data: bytes):
        self.bits = np.unpackbits(np.frombuffer(data, np.uint8))
        self.pos = 0

    def uint(self, width: int) -> int:
        if self.pos + width > len(self.bits):
            raise InputError("encoded ternary weights: truncated stream")
        v = 0
        for b in self.bits[self.pos:self.pos + width]:
            v = (v << 1) | int(b)
        self.pos += width
        return v

    def unary(self) -> int:
        rest = self.bits[self.pos:]
        zeros = np.flatnonzero(rest == 0)
        if not zeros.size:
            raise InputError("encoded ternary weights: truncated stream")
        self.pos += int(zeros[0]) + 1
        return int(zeros[0])

    def gamma(self) -> int:
        nz = 0
        while self.uint(1) == 0:
            nz += 1
        return (1 << nz) | self.uint(nz)

    def rice(self, k: int) -> int:
        return (self.unary() << k) | self.uint(k)

    def fixed(self, b: int) -> int:
        esc, total = (1 << b) - 1, 0
        while (v := self.uint(b)) == esc:
            total += esc
        return total + v


def decode(data: bytes) -> np.ndarray:
    """Inverse of `encode`: the int8 sign tensor."""
    r = _Reader(data)
    shape = tuple(r.uint(32) for _ in range(r.uint(8)))
    eid, param = r.uint(8), r.uint(8)
    if eid >= len(ENCODINGS):
        raise InputError(f"encoded ternary weights: unknown encoding id {eid}")
    encoding = ENCODINGS[eid]
    n = int(np.prod(shape)) if shape else 0
    out = np.zeros(n, np.int8)
    if encoding == "packed2":
        codes = r.bits[r.pos:r.pos + 2 * n].reshape(-1, 2)
        v = codes[:, 0] * 2 + codes[:, 1]
        out[:] = np.where(v == 2, -1, v)
    elif encoding == "bitmap_sign":
        nzmask = r.bits[r.pos:r.pos + n].astype(bool)
        neg = r.bits[r.pos + n:r.pos + n + int(nzmask.sum())].astype(bool)
        out[nzmask] = np.where(neg, -1, 1)
    elif encoding in ("index_fixed", "index_rice"):
        rows = out.reshape(1, -1) if len(shape) == 1 else out.reshape(shape[0], -1)
        read = (lambda: r.fixed(param)) if encoding == "index_fixed" else (lambda: r.rice(param))
        for row in rows:
            for sign in (1, -1):
                pos = -1
                for _ in range(r.gamma() - 1):
                    pos += read() + 1
                    row[pos] = sign
    else:
        pos = -1
        for _ in range(r.gamma() - 1):
            pos += r.rice(param) + 1
            out[pos] = -1 if r.uint(1) else 1
    return out.reshape(shape)
