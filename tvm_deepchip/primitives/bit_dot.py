"""Ternary weights as bit-planes multiplied by the int8 dot-product instruction: 2 bits a weight
in memory, expanded to -1/0 bytes in registers, 64 products an instruction.

Layout: for each block of 16 output channels and each group of 4 inputs, one uint64 word per
plane (the +1 taps', then the -1 taps'), bit lane * 4 + j set where channel 16 b + lane has that
sign at input 4 q + j: exactly the 16 x 4 weight operand of one VNNI `vpdpbusd` step, so a word
becomes the operand by two instructions (kmovq; vpmovm2b: the int1 -> int8 sign extension of its
bits) and one dot product adds its 64 products. Narrower vectors take the word in pieces: AVX2
two 32-bit halves (8 channels each; `vpmaddubsw` + `vpmaddwd`), NEON four 16-bit quarters (4
channels each; `sdot`, or multiplies and adds without dotprod). The sums come out negated (the
weights are -1/0) and are stored positive.

    sums[n, 0, c] = sum_k x'[n, k] * [w[c, k] = +1]      sums[n, 1, c] = ... [w[c, k] = -1]

x' are the input codes in the dot product's operand type (shifted by 128 where that is not
theirs: int8_weights.epilogue takes it back out).

Binary weights {-1, +1} (BinaryConnect, BWN: primitives/bwn_dense, bwn_conv2d) take one plane, 1
bit a weight: a bit set where the weight is -1, clear where +1. Its expansion is the -1/0 bytes
OR 1: -1/+1 (LLVM makes it one masked blend of -1s and +1s on AVX-512), so one dot product adds
the 64 signed products and the sum is the int8 layer's (sums[n, 0, c] = sum_k x'[n, k] * w[c, k]).
Padded inputs (the zero tail, channels past Ci) hold code 0, so the +1 their clear bits stand for
adds nothing.

The index rows or delta lists of the sparse forms read about as many bytes at 90% zeros (2 a
non-zero weight, or 1 and a walk); this form reads every weight's 2 bits but adds 64 of them an
instruction instead of one an index.

Built as TIR directly (a te.extern, like the delta walk): TE has no bits-to-bytes expansion, and
a tensor intrinsic cannot match a step whose weights are the bits of a word.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..parallel_costs import PARALLEL_MIN_MACS
from . import roles
from .conv_layout import _ceil, code_shift
from .record import Weights, scalar

CHANNELS = 16  # output channels a word covers
GROUP = 4  # inputs a word covers
PLANES = (1, -1)  # the sign each plane of ternary words marks (a set bit: that weight)
BINARY_PLANES = (-1,)  # binary words: one plane, a set bit a -1 weight, a clear one +1
MAX_TILE_ROWS = 4  # rows (images, conv positions) a register tile multiplies each expanded word with


@dataclass(frozen=True, eq=False)
class BitWords(Weights):
    words: object  # uint64 [Co/16, K/4, planes]
    operand: str = scalar("uint8")  # the type the dot products read the input codes in

    @property
    def binary(self) -> bool:
        """One plane of binary weights (BINARY_PLANES), else two of ternary ones (PLANES)."""
        return int(self.words.shape[-1]) == len(BINARY_PLANES)

    def nbytes(self) -> int:
        """What the kernel reads at run time (weight_sizes: the one count of this form)."""
        from ..weight_sizes import bit_words_bytes

        cb, kq, planes = self.words.shape
        return bit_words_bytes(cb * CHANNELS, kq * GROUP, int(planes))


def pack(codes2d: np.ndarray, operand: str, planes: tuple = PLANES) -> BitWords:
    """[Co, K] codes -> the words (channels and inputs zero-padded): `planes` PLANES for codes in
    {-1, 0, 1}, BINARY_PLANES for codes in {-1, 1}."""
    co, k = codes2d.shape
    cp, kp = _ceil(co, CHANNELS) * CHANNELS, _ceil(k, GROUP) * GROUP
    padded = np.zeros((cp, kp), np.int8)
    padded[:co, :k] = codes2d
    # [cb, lane, q, j] -> [cb, q, lane, j]: bit lane * 4 + j of word (cb, q)
    blocks = padded.reshape(cp // CHANNELS, CHANNELS, kp // GROUP, GROUP).transpose(0, 2, 1, 3)
    flat = blocks.reshape(cp // CHANNELS, kp // GROUP, CHANNELS * GROUP)
    weights = np.uint64(1) << np.arange(CHANNELS * GROUP, dtype=np.uint64)
    words = [((flat == v).astype(np.uint64) * weights).sum(-1, dtype=np.uint64) for v in planes]
    return BitWords(np.ascontiguousarray(np.stack(words, -1)), operand)


def unpack(w: BitWords, co: int, k: int) -> np.ndarray:
    """Inverse of pack: [Co, K] codes (of binary words: the padding reads +1)."""
    words = w.words
    cb, kq = words.shape[:2]
    bits = ((words[..., None] >> np.arange(CHANNELS * GROUP, dtype=np.uint64)) & np.uint64(1)).astype(np.int8)
    signs = 1 - 2 * bits[:, :, 0] if w.binary else bits[:, :, 0] - bits[:, :, 1]  # cb, q, lane * 4 + j
    return signs.reshape(cb, kq, CHANNELS, GROUP).transpose(0, 2, 1, 3).reshape(cb * CHANNELS, kq * GROUP)[:co, :k]


def np_sums(rows: np.ndarray, in_dtype: str, w: BitWords, co: int) -> list[np.ndarray]:
    """numpy: the kernel's sums [M, Co] in int64 of M rows of K input codes of type `in_dtype`,
    shifted into the operand type as the kernel does: [S+, S-] of ternary words, [S] (the signed
    sum) of binary ones."""
    xs = rows.astype(np.int64) + code_shift(in_dtype, w.operand)
    codes = unpack(w, co, rows.shape[1]).astype(np.int64)
    if w.binary:
        return [xs @ codes.T]
    return [xs @ (codes > 0).T.astype(np.int64), xs @ (codes < 0).T.astype(np.int64)]


def te_groups(x, w: BitWords):
    """[N, K/4, 4]: the codes of x [N, K] shifted into the operand type, the tail zero (TE layout
    stage)."""
    from tvm import te, tirx

    m, k = (int(v) for v in x.shape)
    kq = int(w.words.shape[1])
    shift = code_shift(str(x.dtype), w.operand)

    def value(i, q, j):
        t = q * GROUP + j
        v = (x[i, tirx.min(t, k - 1)].astype("int16") + shift).astype(w.operand)
        return v if k % GROUP == 0 else tirx.if_then_else(t < k, v, tirx.const(0, w.operand))

    return te.compute((m, kq, GROUP), value, name="xgroups", attrs=roles.attrs(roles.LAYOUT))


@dataclass(frozen=True)
class Windows:
    """The rows of a windowed product (packed_windows): each image's `per` positions, in order.
    `taps`: every index of the steps after the first (static), in the steps' order. Products of
    (position p, tap) where not live(p, tap) are skipped (taps reading only padding); their sums,
    the same for every image, come in `padded` [per, planes, Cp] int32 and are added to the
    stored sums."""

    per: int
    taps: tuple
    live: Callable
    padded: object  # the TE tensor of the skipped products' sums

    def computed(self, macs: int) -> int:
        """Of `macs` multiply-adds over every (position, tap), those of the live pairs."""
        live = sum(self.live(p, t) for p in range(self.per) for t in self.taps)
        return macs * live // (self.per * len(self.taps))


def te_sums(layout, w: BitWords, cls, rows: int, quad=None, steps: tuple | None = None, windows: Windows | None = None):
    """sums [M, planes, Cp] int32 of M rows (te.extern over `layout` and the words), channel blocks on
    both cores where the multiply-adds pay a launch (parallel_costs.PARALLEL_MIN_MACS). Default:
    the rows of grouped codes te_groups made ([M, K/4, 4]). Else `quad(buf, row, qs)`: the 4 codes
    (a vector load from the layout's buffer) row `row` multiplies with word q, its index in the
    nested loops of extents `steps` (row-major; their product is K/4): a conv's windows read in
    place (packed_windows), with `windows` the products of padding taps skipped."""
    from tvm import te, tirx

    cb, kq, planes = (int(v) for v in w.words.shape)
    steps = steps or (kq,)
    macs = planes * rows * cb * CHANNELS * kq * GROUP
    if windows is not None:
        macs = windows.computed(macs)
    parallel = macs >= PARALLEL_MIN_MACS
    quad = quad or (lambda buf, row, qs: tirx.BufferLoad(buf, [row, qs[0], tirx.Ramp(0, 1, GROUP)]))
    ins = [layout, w.words] + ([windows.padded] if windows else [])
    return te.extern([(rows, planes, cb * CHANNELS)], ins,
                     lambda ins, outs: _body(ins, outs[0], cls, parallel, rows, quad, steps, windows),
                     dtype=["int32"], name="bit_sums", attrs=roles.attrs(roles.ACCUMULATOR))


def _tile(cb: int, rows: int, planes: int, pieces: int, budget: int, per: int = 0) -> tuple[int, int]:
    """(channel blocks, rows) of a register tile: each expanded word serves the tile's rows (up to
    MAX_TILE_ROWS, preferred), each input group its channel blocks; the accumulators (rows x blocks
    x planes x pieces vectors) within `budget` registers. `per` > 0: the rows are one image's
    positions, `per` of them (Windows: a row's position is then its place in the tile)."""
    for tr in ([per] if per else sorted({min(rows, MAX_TILE_ROWS), 2, 1}, reverse=True)):
        for rc in (4, 2, 1):
            if tr <= rows and cb % rc == 0 and (tr * rc * planes * pieces <= budget or rc == 1 and per):
                return rc, tr
    return 1, 1


def _body(ins, out, cls, parallel, m_rows, quad, steps, windows):
    from tvm import tirx
    from tvm.script.ir_builder import IRBuilder
    from tvm.tirx.script import builder as T

    from .bit_dot_steps import step_for

    layout, words = ins[:2]
    step = step_for(cls, str(layout.dtype))
    cb, planes = int(words.shape[0]), int(words.shape[2])
    binary = planes == len(BINARY_PLANES)
    lanes, pieces = step.lanes, CHANNELS // step.lanes
    rc, tr = _tile(cb, m_rows, planes, pieces, cls.vector_registers // 2, windows.per if windows else 0)
    bits = CHANNELS * GROUP // pieces
    zero = tirx.Broadcast(tirx.const(0, "int32"), lanes)
    vectors = [(r, p, s) for r in range(rc) for p in range(planes) for s in range(pieces)]

    def at(i, r, p, s):  # row i of the tile, vector (r, p, s)
        return tirx.Ramp((((i * rc + r) * planes + p) * pieces + s) * lanes, 1, lanes)

    def expand(piece):  # a word's bits -> -1/0 bytes (ternary), -1/+1 (binary)
        signs = tirx.Cast(f"int8x{bits}", tirx.reinterpret(f"int1x{bits}", piece))
        return signs | tirx.Broadcast(tirx.const(1, "int8"), bits) if binary else signs

    def products(acc, cbo, first, qs, live_rows):  # word q of every vector, times each live row's codes
        q = qs[0]
        for v, e in zip(qs[1:], steps[1:]):
            q = q * e + v
        quads = {i: quad(layout, first + i, qs) for i in live_rows}
        for r, p, s in vectors:
            word = tirx.BufferLoad(words, [cbo * rc + r, q, p])
            piece = word if pieces == 1 else tirx.Cast(f"uint{bits}", word >> tirx.const(s * bits, "uint64"))
            signs = expand(piece)
            for i in live_rows:  # one expansion, a dot product a row
                T.buffer_store(acc, step.dot(tirx.BufferLoad(acc, [at(i, r, p, s)]), quads[i], signs), [at(i, r, p, s)])

    def tile(cbo, first, rows):  # rows first .. first + rows - 1 against channel blocks cbo * rc ..
        acc = T.alloc_buffer((rows * rc * planes * CHANNELS,), "int32", scope="global")  # on the stack
        for i in range(rows):
            for v in vectors:
                T.buffer_store(acc, zero, [at(i, *v)])
        if windows is None:
            with T.grid(*steps) as qs:
                products(acc, cbo, first, [qs] if isinstance(qs, tirx.Var) else list(qs), range(rows))
        else:  # the taps unrolled, each with the rows (positions) whose window it reads inside
            for tap in windows.taps:
                live_rows = [i for i in range(rows) if windows.live(i % windows.per, tap)]
                if live_rows:
                    with T.serial(0, steps[0]) as q0:
                        products(acc, cbo, first, [q0, *tap], live_rows)
        for i in range(rows):
            for r, p, s in vectors:
                c = tirx.Ramp((cbo * rc + r) * CHANNELS + s * lanes, 1, lanes)
                total = tirx.BufferLoad(acc, [at(i, r, p, s)])  # (ternary: negated, its weights were -1/0)
                total = total if binary else zero - total
                if windows is not None:
                    total = total + tirx.BufferLoad(ins[2], [i % windows.per, p, c])
                T.buffer_store(out, total, [first + i, p, c])

    whole, rest = divmod(m_rows, tr)
    with IRBuilder() as ib:
        with (T.parallel if parallel else T.serial)(0, cb // rc) as cbo:
            if whole:
                with T.serial(0, whole) as t:
                    tile(cbo, t * tr, tr)
            if rest:
                tile(cbo, whole * tr, rest)
    return ib.get()
