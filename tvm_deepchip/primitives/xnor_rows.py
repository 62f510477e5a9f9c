"""XNOR conv2d with output positions in the vector lanes: the form for layers of few channels.

xnor_conv2d's vectors run over output channels, one output position at a time. A layer of 16
output channels (ResNet-44's first stage: 16 in, 16 out, 32x32 maps) fills one vector per
position, so every position pays its scalar work (the window's taps inside the image, the
padding test of each tap, a horizontal fold of the output bits) for 9 vector popcounts. Here a
vector holds neighbouring output positions of one row and each output channel (up to 32) is its
own accumulator vector: a tap loads the positions' input words at once (the image copied once
into a zero-padded buffer, so the load is contiguous) and XORs them with the channel's weight word,
broadcast. A padded tap adds nothing: the copy carries a mask word per pixel (all ones inside
the image, zero in the padding) ANDed with the XOR, one more load per tap for every channel.

    pcs[n, oy, c, ox] = sum_taps popcount((xp[n, oy*sh + ky, ox + kx] XOR w[c, ky, kx]) AND m[oy*sh + ky, ox + kx])

The same integers as xnor_conv2d (its reference, epilogue and weights); codes come out NCHW
directly (the positions are the rows' own order: no transposing crop), bits as the next XNOR
layer reads them. Stride 1 along rows, Wo a whole number of the widest vector. At most 16 input
channels fill half a packed word: they are read as uint16 words and counted in int16 lanes (twice
the positions a vector; AVX-512 BITALG's VPOPCNTW, else LLVM's byte lookup), no half-empty words.
"""
from __future__ import annotations

from . import roles
from .binary_bits import WORD_DTYPE, BitsEpilogue, words
from .record import rule_of
from .xnor_weights import padded_channels, taps_inside, te_weight

STEM = "xnor_conv2d_rows"
RULE = rule_of(STEM)
# output channels (padded) the form keeps as accumulator vectors: ResNet-44 BNN's 32-channel
# layers (16x16 maps) AVX-512 build, one core, 1.6 / 2.6 -> 1.4 / 1.7 us (bits / codes out); AVX2
# build, two cores, 4.8 / 6.2 -> 5.5 / 5.9 (the whole model gains on AVX-512, is even on AVX2)
MAX_CHANNELS = 32
HALF = 16  # input channels a uint16 word holds


def word_bits(ci: int) -> int:
    """Bits of the words the form reads: 16 input channels or fewer fill half a packed word, so
    they are read as uint16 and counted in int16 lanes, twice the positions a vector (AVX-512
    BITALG's VPOPCNTW; a window's count, at most 16 x taps, fits in int16); else the packed words."""
    return HALF if ci <= HALF else 32


def positions_per_vector(ci: int) -> int:
    """Output positions the widest vector (64 bytes) holds: Wo is a multiple of it (AVX2's and
    NEON's vectors divide it)."""
    return 64 * 8 // word_bits(ci)


def applies(geo, cp: int) -> bool:
    """The layer suits the form: few channels, stride 1 along rows, whole vectors of positions,
    a window's count within int16 (uint16 words)."""
    row = positions_per_vector(geo.ci)
    return cp <= MAX_CHANNELS and geo.sw == 1 and geo.wo % row == 0 and geo.kh * geo.kw * HALF < 2 ** 15


def compute(x, weights, consts, site, word_at=None):
    """TE. x: uint32 [N, H, W, Cw] bits, or what `word_at(n, y, x, v)` reads the words of (the
    8-bit codes it packs: binary_pack.word_reader); weights: xnor_conv2d's (blocked: one block of Cp)."""
    from tvm import te, tirx

    g = site.geo
    top, left = g.pad[0], g.pad[1]
    hp, wp = g.h + g.pad[0] + g.pad[2], g.wo + g.kw - 1
    cw, w = words(g.ci), weights.w
    word_at = word_at or (lambda n, y, xx, v: x[n, y, xx, v])
    bits = word_bits(g.ci)
    word, count = f"uint{bits}", f"int{bits}"  # the input words, the popcounts' accumulators

    def is_image(y, xx):
        return tirx.all(y >= top, y < top + g.h, xx >= left, xx < left + g.w)

    def padded(n, y, xx, v):  # a padding pattern (the schedule splits it: zeros, then the image)
        return tirx.if_then_else(is_image(y, xx), word_at(n, y - top, xx - left, v).astype(word), tirx.const(0, word))

    xp = te.compute((g.n, hp, wp, cw), padded, name="xpad", attrs=roles.attrs(roles.LAYOUT))
    ones = tirx.const(2 ** bits - 1, word)
    mask = te.compute((hp, wp), lambda y, xx: tirx.Select(is_image(y, xx), ones, tirx.const(0, word)),
                      name="xmask", attrs=roles.attrs(roles.LAYOUT))
    ky, kx = te.reduce_axis((0, g.kh), name="ky"), te.reduce_axis((0, g.kw), name="kx")
    v = te.reduce_axis((0, cw), name="v")
    cp = padded_channels(w)

    def popcounts(n, oy, c, ox):  # (channel before position: a channel's positions contiguous)
        y, xx = oy * g.sh + ky, ox + kx
        diff = tirx.bitwise_xor(xp[n, y, xx, v], te_weight(w, (ky, kx, v), c).astype(word))
        if any(g.pad):
            diff = tirx.bitwise_and(diff, mask[y, xx])
        return te.sum(tirx.popcount(diff).astype(count), axis=[ky, kx, v])

    pcs = te.compute((g.n, g.ho, cp, g.wo), popcounts, name="popcounts", attrs=roles.attrs(roles.ACCUMULATOR))

    def acc(n, oy, ox, c):
        window = taps_inside(oy * g.sh - top, g.kh, g.h) * taps_inside(ox - left, g.kw, g.w)
        return window * weights.taps - pcs[n, oy, c, ox].astype("int32") * 2

    return output(acc, g, consts, site.epi)


def output(acc, g, consts, epi):
    """Bits [N, Ho, Wo, 1] (Co <= 32: one word), or codes [N, Co, Ho, Wo] computed in that order
    (TE). A word is the OR of its channels' compares, each a vector over positions (the channel
    form's folds of halves, binary_bits.te_pack, would shuffle across positions here)."""
    from tvm import te, tirx

    from . import binary_bits, requantize

    if isinstance(epi, BitsEpilogue):
        (t,) = consts
        one, zero = tirx.const(1, WORD_DTYPE), tirx.const(0, WORD_DTYPE)

        def word(n, oy, ox, v):
            bits = [tirx.Select(acc(n, oy, ox, c) >= t[c], one << c, zero) for c in range(g.co)]
            return binary_bits.or_tree(bits)

        assert binary_bits.words(g.co) == 1, "the rows form keeps at most 32 channels"
        return te.compute((g.n, g.ho, g.wo, 1), word, name=roles.EPILOGUE_NAME, attrs=roles.epilogue_attrs(RULE))
    return te.compute((g.n, g.co, g.ho, g.wo), lambda n, c, oy, ox: requantize.te_value(epi, consts, c, acc(n, oy, ox, c), None),
                      name=roles.EPILOGUE_NAME, attrs=roles.epilogue_attrs(RULE))
