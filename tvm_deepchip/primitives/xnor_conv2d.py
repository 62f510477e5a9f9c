"""XNOR conv2d: binary weights {-a[c], +a[c]} on binary activations {-1, +1}, both bit-packed
(BNN, Hubara et al. 2016; XNOR-Net, Rastegari et al. 2016).

    acc[n, oy, ox, c] = taps(oy, ox) * C - 2 * sum over taps inside the image of popcount(x XOR w)
    y = the epilogue of acc: bits for the next XNOR layer (acc >= T[c], binary_bits.thresholds),
        or the requantized 8-bit codes (float logits) of y = a[c] * acc + b[c] (requantize)

A tap in the padding adds 0, as ONNX's zero padding of a +-1 input does (zero is neither sign):
it is left out of both the popcount and the tap count, taps(oy, ox) = the taps of the window
inside the image (Larq Compute Engine corrects a padded -1 per position instead; a test on the
position costs less than a correction table of Co x Ho x Wo).

Input: uint32 [N, H, W, ceil(C/32)] (channels packed, binary_bits). Weights: uint32
[Cp / B, KH, KW, ceil(C/32), B] (xnor_weights: blocks of output channels, in each the words of
the block's channels for one tap adjacent), so the kernel's vector runs over output channels
with the input word broadcast. Layers of few output channels take xnor_rows' form instead.
Output: bits uint32 [N, Ho, Wo, ceil(Co/32)], or codes [N, Co, Ho, Wo] (NCHW, as the int8 layers read).

Where the ISA class counts 64-bit lanes best (IsaClass.popcount_bits) and a pixel has an even
number of words (`paired`), the kernel reads them two at a time as one uint64 (word 2v in the low
half, 2v + 1 in the high: the same bits, the weights stored so) and sums int64 popcounts: x86
without VPOPCNTDQ counts the bytes of a vector with `vpshufb` nibble lookups and adds them up per
lane, which for 64-bit lanes is one `vpsadbw` and for 32-bit ones two, two unpacks and a pack
(9 vector instructions a vector against 13).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..formats import Format
from ..layer import OutBinary
from . import binary_bits, binary_pack, conv_layout, requantize, roles, xnor_rows
from .binary_bits import BitsEpilogue, WORD_DTYPE, words
from .record import Primitive, Site, rule_of
from .xnor_weights import XnorWeights, np_blocked, np_unblocked, padded, padded_channels, taps_inside, te_weight

STEM = "xnor_conv2d"
RULE = rule_of(STEM)
def pack(layer, geo=None, operand: str = "uint8", cls=None) -> XnorWeights:
    """[Co, C, KH, KW] codes +-1 -> XnorWeights (bit 1 for +1), words paired for ISA class `cls`
    where `paired` says."""
    co, c = layer.codes.shape[:2]
    bits = binary_bits.np_pack(layer.codes.transpose(2, 3, 0, 1) > 0)  # [KH, KW, Co, Cw]
    w = np.zeros(bits.shape[:2] + (bits.shape[3], padded(co)), np.uint32)
    w[..., :co] = bits.transpose(0, 1, 3, 2)
    if geo is not None and paired(geo, padded(co), cls):
        w = binary_bits.np_pairs(w, axis=2)
    return XnorWeights(np_blocked(w), c)


def paired(geo, cp: int, cls) -> bool:
    """The channel form reads a pixel's words in pairs, as uint64: where the class counts 64-bit
    lanes best and the words pair up."""
    return binary_bits.pairs_words(cls, words(geo.ci)) and not xnor_rows.applies(geo, cp)


def epilogue(layer, operand: str = "uint8"):
    """Bits where the next layer is XNOR, else the int8 layer's requantization of a[c] * acc
    (codes +-1 of scale a[c] on an input of scale 1: an int8 layer on int8 codes, exactly, whose
    accumulators are bounded by the taps: the one-piece int32 form, one vector multiply per 16
    outputs where the 128x wider int8 bound took two pieces, four)."""
    if isinstance(layer.out, OutBinary):
        cp = padded(layer.out_channels)
        taps = int(np.abs(layer.codes[0]).sum())
        t = binary_bits.thresholds(layer.w_scale, layer.bias, layer.out.tau, layer.act_lo, layer.act_hi, taps)
        return BitsEpilogue(np.concatenate([t, np.full(cp - len(t), taps + 1, np.int32)]))
    return requantize.fit(replace(layer, weight_kind="int8", in_dtype="int8", in_scale=1.0, in_zero_point=0), code_max=1)


def compute(x, weights: XnorWeights, consts, site: Site, word_at=None):
    """TE definition. x: uint32 [N, H, W, Cw] bits, or what `word_at(n, y, x, v)` reads the words
    of (compute_binarized); weights: from `pack`."""
    from tvm import te, tirx

    g = site.geo
    if xnor_rows.applies(g, padded_channels(weights.w)):  # few channels: positions in the vector lanes
        return xnor_rows.compute(x, weights, consts, site, word_at=word_at)
    if word_at is not None:  # the words packed first (the schedule: each core the rows it reads)
        x = te.compute((g.n, g.h, g.w, words(g.ci)), word_at, name="xwords", attrs=roles.attrs(roles.LAYOUT))
    top, left = g.pad[0], g.pad[1]
    w = weights.w
    ky, kx = te.reduce_axis((0, g.kh), name="ky"), te.reduce_axis((0, g.kw), name="kx")
    v = te.reduce_axis((0, int(w.shape[3])), name="v")  # a pixel's words, or their pairs (pack)

    def popcounts(n, oy, ox, c):
        iy, ix = oy * g.sh + ky - top, ox * g.sw + kx - left
        pixel = (n, tirx.max(tirx.min(iy, g.h - 1), 0), tirx.max(tirx.min(ix, g.w - 1), 0))
        word = binary_bits.te_word(x, pixel, v, w)
        pc = binary_bits.te_popcount(word, te_weight(w, (ky, kx, v), c), binary_bits.acc_dtype(w))
        if any(g.pad):
            pc = tirx.if_then_else(tirx.all(iy >= 0, iy < g.h, ix >= 0, ix < g.w), pc, tirx.const(0, binary_bits.acc_dtype(w)))
        return te.sum(pc, axis=[ky, kx, v])

    cp = padded_channels(w)
    pcs = te.compute((g.n, g.ho, g.wo, cp), popcounts, name="popcounts", attrs=roles.attrs(roles.ACCUMULATOR))

    def acc(n, oy, ox, c):
        taps = taps_inside(oy * g.sh - top, g.kh, g.h) * taps_inside(ox * g.sw - left, g.kw, g.w)
        return taps * weights.taps - pcs[n, oy, ox, c].astype("int32") * 2

    return output(acc, (g.n, g.ho, g.wo), g.co, cp, consts, site.epi, RULE)


def takes_binarized(site: Site, weights: XnorWeights, in_dtype: str) -> bool:
    """Whether the kernel can binarize and pack its own input (compute_binarized): every form
    can; the rows form packs it in its copy of the padded rows, the channel form in a copy of
    its own (each core the rows it reads: schedules/xnor). Measured, the two builds in one
    process, medians of paired ratios, same outputs: ResNet-44 BNN 0.903x (rows form) then
    0.953x (channel form) the time, AVX-512 VNNI build; 0.954x, 0.995x AVX2 build; SVHN
    ConvNet BNN (its one pack after a max pool) 1.002x / 1.004x."""
    return True


def compute_binarized(x, weights: XnorWeights, consts, site: Site, thr):
    """compute's output over x [N, C, H, W] (8-bit codes or floats) whose binarization against
    thr [C] (binary_pack.te_pack's) is the layer's input: no pack kernel before it."""
    return compute(x, weights, consts, site, word_at=binary_pack.word_reader(x, thr))


def output(acc, space: tuple, co: int, cp: int, consts, epi, rule: str):
    """The epilogue over acc(*space, c) (an expression): bit words [*space, ceil(co/32)] or codes
    [N, Co, *spatial] (TE). Shared with xnor_dense."""
    from tvm import te, tirx

    if isinstance(epi, BitsEpilogue):
        (t,) = consts
        return binary_bits.te_pack((*space, words(co)), lambda *i: acc(*i) >= t[i[-1]], co,
                                   roles.EPILOGUE_NAME, roles.epilogue_attrs(rule))
    last = co - 1
    y = te.compute((*space, cp), lambda *i: requantize.te_value(epi, consts, tirx.min(i[-1], last), acc(*i), None),
                   name=roles.EPILOGUE_NAME, attrs=roles.epilogue_attrs(rule))
    if len(space) == 1:
        return te.compute((space[0], co), lambda n, c: y[n, c], name="crop", attrs=roles.attrs(roles.CROP))
    return te.compute((space[0], co, *space[1:]), lambda n, c, *s: y[(n, *s, c)], name="crop",
                      attrs=roles.attrs(roles.CROP))


def np_signs(bits: np.ndarray, c: int) -> np.ndarray:
    """Packed words [..., Cw] -> +-1 int64 [..., c]."""
    return binary_bits.np_unpack(bits, c).astype(np.int64) * 2 - 1


def np_output(acc: np.ndarray, epi, co: int) -> np.ndarray:
    """numpy epilogue of acc [N, Co, ...] (channel axis 1): the same integers as `output`."""
    if isinstance(epi, BitsEpilogue):
        on = acc >= epi.thresholds[:co].reshape(binary_bits.channel_shape(acc.ndim))
        return binary_bits.np_pack(np.moveaxis(on, 1, -1))
    return requantize.np_apply(epi, acc, None, channel_axis=1)


def reference(qx: np.ndarray, weights: XnorWeights, site: Site) -> np.ndarray:
    """numpy: the +-1 values unpacked, zero-padded, multiplied by the +-1 weights (a different
    route to the same integers than the kernel's popcounts), then the same epilogue."""
    g = site.geo
    xs = np_signs(qx, g.ci).transpose(0, 3, 1, 2)  # [N, C, H, W]
    wsigns = np_signs(np_unblocked(weights.w)[..., : g.co].transpose(0, 1, 3, 2), g.ci).transpose(2, 3, 0, 1)  # [Co, C, KH, KW]
    windows = conv_layout.np_windows(xs, g, 0)  # [N, Ho, Wo, C*KH*KW], padding 0
    acc = np.einsum("nhwk,ok->nohw", windows, wsigns.reshape(g.co, -1))
    return np_output(acc, site.epi, g.co)


def geometry(layer, in_shape):
    """The conv geometry of the layer's +-1 input [N, C, H, W] (the kernel reads it packed;
    every pixel, strides as strides: conv_layout's `step` form is the 8-bit layout's)."""
    return conv_layout.ConvGeometry.of(in_shape, layer.codes.shape, layer.strides, layer.padding, layer.name)


def packed_io(geo, epi) -> tuple:
    """(input shape, dtype, output shape) of the kernel: bits in; bits or NCHW codes out."""
    out = (geo.n, geo.ho, geo.wo, words(geo.co)) if isinstance(epi, BitsEpilogue) else geo.out_shape()
    return (geo.n, geo.h, geo.w, words(geo.ci)), WORD_DTYPE, out


PRIMITIVE = Primitive("conv2d", Format.XNOR, STEM, "binary", geometry, pack, compute, reference, epilogue, packed_io,
                      takes_binarized=takes_binarized, compute_binarized=compute_binarized, pack_by_class=True)
