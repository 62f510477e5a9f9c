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
theirs: int8_weights.epilogue takes it back out). The index rows or delta lists of the sparse
forms read about as many bytes at 90% zeros (2 a non-zero weight, or 1 and a walk); this form
reads every weight's 2 bits but adds 64 of them an instruction instead of one an index.

Built as TIR directly (a te.extern, like the delta walk): TE has no bits-to-bytes expansion, and
a tensor intrinsic cannot match a step whose weights are the bits of a word.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import roles
from .conv_layout import _ceil, code_shift
from .record import Weights, scalar

CHANNELS = 16  # output channels a word covers
GROUP = 4  # inputs a word covers
PLANES = (1, -1)  # the sign each plane marks
MAX_TILE_VECTORS = 8  # accumulator registers a tile uses (AVX2 has 16 vector registers)


@dataclass(frozen=True, eq=False)
class BitWords(Weights):
    words: object  # uint64 [Co/16, K/4, 2]
    operand: str = scalar("uint8")  # the type the dot products read the input codes in

    def nbytes(self) -> int:
        """What the kernel reads at run time (weight_sizes: the one count of this form)."""
        from ..weight_sizes import bit_words_bytes

        cb, kq = self.words.shape[:2]
        return bit_words_bytes(cb * CHANNELS, kq * GROUP)


def pack(codes2d: np.ndarray, operand: str) -> BitWords:
    """[Co, K] codes in {-1, 0, 1} -> the words (channels and inputs zero-padded)."""
    co, k = codes2d.shape
    cp, kp = _ceil(co, CHANNELS) * CHANNELS, _ceil(k, GROUP) * GROUP
    padded = np.zeros((cp, kp), np.int8)
    padded[:co, :k] = codes2d
    # [cb, lane, q, j] -> [cb, q, lane, j]: bit lane * 4 + j of word (cb, q)
    blocks = padded.reshape(cp // CHANNELS, CHANNELS, kp // GROUP, GROUP).transpose(0, 2, 1, 3)
    flat = blocks.reshape(cp // CHANNELS, kp // GROUP, CHANNELS * GROUP)
    weights = np.uint64(1) << np.arange(CHANNELS * GROUP, dtype=np.uint64)
    planes = [((flat == v).astype(np.uint64) * weights).sum(-1, dtype=np.uint64) for v in PLANES]
    return BitWords(np.ascontiguousarray(np.stack(planes, -1)), operand)


def unpack(w: BitWords, co: int, k: int) -> np.ndarray:
    """Inverse of pack: [Co, K] codes."""
    words = w.words
    cb, kq = words.shape[:2]
    bits = ((words[..., None] >> np.arange(CHANNELS * GROUP, dtype=np.uint64)) & np.uint64(1)).astype(np.int8)
    signs = bits[:, :, 0] - bits[:, :, 1]  # cb, q, lane * 4 + j
    return signs.reshape(cb, kq, CHANNELS, GROUP).transpose(0, 2, 1, 3).reshape(cb * CHANNELS, kq * GROUP)[:co, :k]


def np_sums(qx: np.ndarray, w: BitWords, co: int) -> tuple[np.ndarray, np.ndarray]:
    """numpy: (S+, S-) [N, Co] of the shifted codes, in int64."""
    k = qx.shape[1]
    xs = qx.astype(np.int64) + code_shift(str(qx.dtype), w.operand)
    codes = unpack(w, co, k).astype(np.int64)
    return xs @ (codes > 0).T.astype(np.int64), xs @ (codes < 0).T.astype(np.int64)


def te_groups(x, w: BitWords, read=None):
    """[N, K/4, 4] input codes shifted into the operand type, the tail zero (TE layout stage);
    `read(i, t)`: input code t of image i (default x[i, t])."""
    from tvm import te, tirx

    n, kq = int(x.shape[0]), int(w.words.shape[1])
    k = int(x.shape[1]) if read is None else None
    read = read or (lambda i, t: x[i, t])
    shift = code_shift(str(x.dtype), w.operand)
    last = (k or kq * GROUP) - 1

    def value(i, q, j):
        t = q * GROUP + j
        v = (read(i, tirx.min(t, last)).astype("int16") + shift).astype(w.operand)
        return v if k is None or k % GROUP == 0 else tirx.if_then_else(t <= last, v, tirx.const(0, w.operand))

    return te.compute((n, kq, GROUP), value, name="xgroups", attrs=roles.attrs(roles.LAYOUT))


def te_sums(xg, w: BitWords, cls, parallel: bool):
    """sums [N, 2, Cp] int32 (te.extern over the grouped codes and the words)."""
    from tvm import te

    n, cb = int(xg.shape[0]), int(w.words.shape[0])
    return te.extern([(n, len(PLANES), cb * CHANNELS)], [xg, w.words],
                     lambda ins, outs: _body(ins[0], ins[1], outs[0], cls, parallel),
                     dtype=["int32"], name="bit_sums", attrs=roles.attrs(roles.ACCUMULATOR))


def _body(xg, words, out, cls, parallel):
    from tvm import tirx
    from tvm.script.ir_builder import IRBuilder
    from tvm.tirx.script import builder as T

    from .bit_dot_steps import step_for

    step = step_for(cls, str(xg.dtype))
    n_img, kq, cb = int(xg.shape[0]), int(xg.shape[1]), int(words.shape[0])
    lanes, pieces = step.lanes, CHANNELS // step.lanes
    rc = next(r for r in (4, 2, 1) if cb % r == 0 and r * len(PLANES) * pieces <= MAX_TILE_VECTORS or r == 1)
    bits = CHANNELS * GROUP // pieces
    zero = tirx.Broadcast(tirx.const(0, "int32"), lanes)

    def at(r, p, s):
        return tirx.Ramp(((r * len(PLANES) + p) * pieces + s) * lanes, 1, lanes)

    with IRBuilder() as ib:
        with T.serial(0, n_img) as n:
            with (T.parallel if parallel else T.serial)(0, cb // rc) as cbo:
                acc = T.alloc_buffer((rc * len(PLANES) * CHANNELS,), "int32", scope="global")  # on the stack
                for r in range(rc):
                    for p in range(len(PLANES)):
                        for s in range(pieces):
                            T.buffer_store(acc, zero, [at(r, p, s)])
                with T.serial(0, kq) as q:
                    quad = tirx.BufferLoad(xg, [n, q, tirx.Ramp(0, 1, GROUP)])
                    for r in range(rc):
                        for p in range(len(PLANES)):
                            word = tirx.BufferLoad(words, [cbo * rc + r, q, p])
                            for s in range(pieces):
                                piece = word if pieces == 1 else tirx.Cast(f"uint{bits}", word >> tirx.const(s * bits, "uint64"))
                                signs = tirx.Cast(f"int8x{bits}", tirx.reinterpret(f"int1x{bits}", piece))  # -1 / 0
                                T.buffer_store(acc, step.dot(tirx.BufferLoad(acc, [at(r, p, s)]), quad, signs), [at(r, p, s)])
                for r in range(rc):
                    for p in range(len(PLANES)):
                        for s in range(pieces):
                            c = tirx.Ramp((cbo * rc + r) * CHANNELS + s * lanes, 1, lanes)
                            T.buffer_store(out, zero - tirx.BufferLoad(acc, [at(r, p, s)]), [n, p, c])
    return ib.get()
