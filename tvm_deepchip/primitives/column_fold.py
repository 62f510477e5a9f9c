"""Kernel columns folded into input channels: the dot-product conv of a layer with few channels.

A dot-product step of int8_conv2d multiplies `group` input channels of one tap (4 bytes for
vpdpbusd / sdot, 2 int16 codes for vpmaddwd). An RGB first layer has 3 channels: a quarter of
every step multiplies padding, and the flat layout computes the Wq - Wo border columns of every
row too. A conv (Ci, KH, KW) of stride sw across is the conv (Ci*KW, KH, 1) of stride 1 across over

    x'[kx*Ci + c, y, ox] = xpad[c, y, ox * sw + kx]        (ox < Wo: a row im2col of the kernel's columns)

(vertical padding and stride stay the layout's): the Ci*KW codes of a kernel row fill whole
steps, and only valid columns are computed. SVHN ConvNet's conv1 (3 channels, 5x5 over 40x40):
25 steps over 1440 flat positions become 20 over 1296, 72% of the dot products; a grayscale
5x5 (the digits model's conv1 on 8x8, padding 2): 25 steps of one byte in 4 over 96 positions
become 10 over 64. Strided across, the fold also drops the horizontal phase planes and the
kernel columns padded to a multiple of the stride: AlexNet's conv1 (3 channels, 11x11, stride 4,
int16 pairs on AVX2) takes 17 pairs a kernel row over 55 columns instead of 2 pairs x 4 phases x 3
phase columns over 57, 68% of the steps. A conv is folded where that saves at least a tenth (`folded`).

The layout is written directly (te_layout: te_flat's grouped layout of x', never x' itself):
per group of `group` folded channels and input row, each folded channel's row is a contiguous
slice of an input row between constant-length runs of the padding code, then the group's rows
are interleaved into positions (as grouped_layout does for channels). A folded channel's codes are
read from x itself where its row has no padding columns (the rows of the others are copied to a
stack buffer first: a vector load of bytes just stored there waits for the stores), and a row
strided across is read as words of the stride's bytes narrowed to one (strided_load). Measured on
an AMD EPYC znver4 (AVX-512 VNNI build, the layout copy alone, one thread): AlexNet's conv1 layout
(489 KB) 77 -> 29 us, SVHN ConvNet's (34 KB) 0.8 -> 0.6 us.
"""
from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np

from . import grouped_layout
from .conv_layout import ConvGeometry, _ceil

MAX_FOLDED_WORK = 0.9  # fold only where it leaves at most this share of the dot-product steps


def folded(geo: ConvGeometry, group: int) -> ConvGeometry | None:
    """The geometry of the folded conv (Ci*KW channels, KW = 1, stride 1 across, no horizontal
    padding, the vertical stride kept), or None where the layer is not folded: subsampled input
    (`step`), one column, channels that fill their groups, or too little saved (one input channel
    always saves: 1 of 4 bytes a step). Channels that fill their groups would save only the
    border columns, and lost: AMD EPYC znver5, AVX-512 VNNI, 2 threads, ResNet-44 BWN's
    32-channel 16x16 convs 9.6 -> 14.7 us, SVHN ConvNet BWN's 48- and 64-channel 18x18 convs
    15.5 / 21.5 -> 21.3 / 28.3."""
    if group < 2 or geo.kw < 2 or geo.ci % group == 0 or geo.step != 1:
        return None
    top, _, bottom, _ = geo.pad
    fold = replace(geo, ci=geo.ci * geo.kw, w=geo.wo, kw=1, sw=1, pad=(top, 0, bottom, 0))
    # dot-product steps a kernel row, both forms (unfolded: every horizontal phase plane's columns)
    work = geo.ho * geo.wq * _ceil(geo.ci, group) * geo.sw * geo.kwq
    work_folded = fold.ho * fold.wq * _ceil(fold.ci, group)
    return fold if work_folded <= MAX_FOLDED_WORK * work else None


def fold_kernel(w: np.ndarray) -> np.ndarray:
    """[Co, Ci, KH, KW] -> [Co, KW*Ci, KH, 1]: channel kx*Ci + c holds column kx of channel c."""
    co, ci, kh, kw = w.shape
    return np.ascontiguousarray(w.transpose(0, 3, 1, 2).reshape(co, kw * ci, kh, 1))


def unfold_kernel(wf: np.ndarray, geo: ConvGeometry) -> np.ndarray:
    """Inverse of fold_kernel, for the layer of geometry `geo` (its Ci and KW)."""
    co, _, kh, _ = wf.shape
    return np.ascontiguousarray(wf.reshape(co, geo.kw, geo.ci, kh).transpose(0, 2, 3, 1))


def te_layout(x, geo: ConvGeometry, zp: int, group: int, dtype: str, name: str = "xflat", quant=None):
    """[N, flat_len, group] of folded(geo, group).grouped(group): te_flat(x', folded geo, zp,
    group=group, dtype=dtype), x' the folded input (a te.extern: its own loop nest). `quant`:
    x holds floats the copy quantizes (input_quantize; a conv strided across reads codes)."""
    from tvm import te

    assert quant is None or geo.sw == 1, "floats are read in whole rows"
    fold = folded(geo, group)
    g = fold.grouped(group)
    split = grouped_layout.splits_rows(geo, g, group, dtype)
    return te.extern([(geo.n, g.flat_len, group)], [x], lambda ins, outs: _body(ins[0], outs[0], geo, fold, zp, group, dtype, split, quant),
                     dtype=[dtype], name=name, attrs=grouped_layout.layout_attrs(split))


def _body(x, out, geo: ConvGeometry, fold: ConvGeometry, zp: int, group: int, dtype: str, split: bool, quant=None):
    from tvm import tirx
    from tvm.script.ir_builder import IRBuilder
    from tvm.tirx.script import builder as T

    g = fold.grouped(group)
    top, left, wo = geo.pad[0], geo.pad[1], fold.w
    code, pad_code, zero = grouped_layout.operand_codes(quant.dtype if quant else str(x.dtype), dtype, zp)
    # where x holds floats, each input row is quantized once into a stack buffer (`src`: Ci rows
    # of W codes), which the folded channels read as they would read x (a folded channel per
    # kernel column: quantized as read, each float took KW quantizes)

    def fill(buf, start, count: int, value):
        if count > 0:
            with T.vectorized(0, count) as i:
                T.buffer_store(buf, value, [start + i])

    def span(s: int) -> tuple[int, int, int, int]:
        """Folded channel s: (its input channel, kernel column, and the columns [lo, hi) whose
        pixel ox * sw + kx - left lies in the row)."""
        kx, c = divmod(s, geo.ci)
        lo = min(wo, max(0, _ceil(left - kx, geo.sw)))
        return c, kx, lo, max(lo, min(wo, _ceil(geo.w + left - kx, geo.sw)))

    def pixels(kx: int, lo: int, hi: int) -> tuple[int, int]:  # the first and last pixel of columns [lo, hi)
        return lo * geo.sw + kx - left, (hi - 1) * geo.sw + kx - left

    def padded(s: int) -> bool:  # the channel's rows have padding columns
        return s < fold.ci and span(s)[2:] != (0, wo)

    def row(src, rows, n, gi: int, y):
        """The folded channels gi*group .. whose rows have padding columns, row y, into `rows`, and
        the zero rows of channels past Ci*KW."""
        for j in range(group):
            if (s := gi * group + j) >= fold.ci:
                fill(rows, j * wo, wo, zero)
            elif padded(s):
                c, kx, lo, hi = span(s)
                fill(rows, j * wo, lo, pad_code)
                if hi > lo:
                    reads = pixels(kx, lo, hi)
                    codes = strided_load(src, at(n, c, y), reads[0], geo.sw, hi - lo, reads, geo.w)
                    T.buffer_store(rows, code(codes), [j * wo + lo if hi - lo == 1 else tirx.Ramp(j * wo + lo, 1, hi - lo)])
                fill(rows, j * wo + hi, wo - hi, pad_code)

    def loader(src, rows, n, gi: int, y):
        """interleave's `load`: a folded channel's codes at columns x0 .. x0 + count of row y, read
        from x where its row has no padding, else from `rows` (a vector load of a row just stored
        there waits for the stores: measured, SVHN ConvNet's conv1 layout, see the module doc)."""
        def load(j, x0, count):
            s = gi * group + j
            if s >= fold.ci or padded(s):  # (the zero rows too)
                return rows.vload([j * wo + x0], grouped_layout.typed(dtype, count))
            c, kx, _, _ = span(s)
            return code(strided_load(src, at(n, c, y), x0 * geo.sw + kx - left, geo.sw, count, pixels(kx, 0, wo), geo.w))
        return load

    def at(n, c, y):  # the row index of (image n, channel c, row y) in `src`
        return [n, c, y] if quant is None else [0, c, 0]

    with IRBuilder() as ib:
        with T.serial(0, geo.n) as n:
            flat = T.decl_buffer((geo.n * g.flat_len * group,), dtype, data=out.data)  # the output as one vector
            with grouped_layout.rows(g, split) as yq:
                rows = T.alloc_buffer((group * wo,), dtype, scope="global")  # on the stack (delta_walk._scratch)
                src = x if quant is None else T.alloc_buffer((1, geo.ci, 1, geo.w), quant.dtype, scope="global")
                # (a handful of groups: the folded channels are Ci*KW; vertical phases as conv_layout's,
                # plane (gi, py) holding padded rows py, py + sh, ...)
                for py, gi in itertools.product(range(geo.sh), range(g.ci)):
                    base = ((n * g.flat_len) + (gi * geo.sh + py) * g.plane + yq * g.wq) * group
                    y = yq * geo.sh + py - top
                    if quant is not None and gi == 0:
                        _quantize_row(x, src, n, y, quant)
                    with T.If(tirx.all(y >= 0, y < geo.h)):
                        with T.Then():
                            row(src, rows, n, gi, y)
                            grouped_layout.interleave(flat, base, wo, group, loader(src, rows, n, gi, y))
                        with T.Else():
                            with T.serial(0, wo) as xq:
                                for j in range(group):
                                    T.buffer_store(flat, pad_code if gi * group + j < fold.ci else zero,
                                                   [base + xq * group + j])
                grouped_layout.zero_tail_share(flat, n, g, group, dtype, yq)
    return ib.get()


def _quantize_row(x, codes, n, y, quant) -> None:
    """codes[0, c, 0, :] = the codes of x's row y of every channel c (where y is in the image)."""
    from tvm import tirx
    from tvm.tirx.script import builder as T

    ci, w = (int(v) for v in x.shape[1:4:2])
    with T.If(tirx.all(y >= 0, y < int(x.shape[2]))):
        with T.Then():
            for c in range(ci):
                with T.vectorized(0, w) as v:
                    T.buffer_store(codes, quant.te_codes(x[n, c, y, v]), [0, c, 0, v])


WORD_STRIDES = (2, 4, 8)  # strides read as words of that many bytes, one byte kept (uint16/32/64)


def strided_load(x, row: list, at, stride: int, count: int, reads: tuple[int, int], w: int):
    """x[*row, at + i * stride] for i < count (a vector; a scalar for one). Strided across, the
    codes are read as `count` words of `stride` bytes and truncated to the byte each starts
    (ends) with: one load and a narrowing (AVX-512: vpmovdb), where a strided index loads and
    inserts every byte. A word runs stride - 1 bytes past its code (before it, read ending there),
    so this needs those bytes inside the row: `reads` (the first and last pixel any chunk of the
    row reads) tell which way fits; else the per-byte load. Measured: see the module doc."""
    from tvm import tirx

    if count == 1 or stride == 1:
        return tirx.BufferLoad(x, [*row, at if count == 1 else tirx.Ramp(at, 1, count)])
    first, last = reads
    if stride in WORD_STRIDES and (last + stride <= w or first - stride + 1 >= 0):
        forward = last + stride <= w
        start = at if forward else at - stride + 1
        words = tirx.reinterpret(f"uint{8 * stride}x{count}",
                                 tirx.BufferLoad(x, [*row, tirx.Ramp(start, 1, count * stride)]))
        if not forward:  # the code is each word's last byte
            words = words >> grouped_layout.splat(tirx.const(8 * (stride - 1), f"uint{8 * stride}"), count)
        return tirx.reinterpret(f"{x.dtype}x{count}", words.astype(f"uint8x{count}"))
    return tirx.BufferLoad(x, [*row, tirx.Ramp(at, stride, count)])
