"""int8 x 8-bit conv2d with int32 accumulation (the first/last layers, and a ternary fallback).

A dot-product form, the shape of VNNI's vpdpbusd: input channels in groups of 4 innermost in the
flat padded layout (conv_layout.te_flat, group=4), so 16 consecutive output positions read 64
consecutive bytes, and one step is

    acc[n, c, p:p+16] += sum_j x[n, p:p+16 + offset(tap), j] * w[c, tap, j]        (j < 4)

a 16x4 block of inputs against one broadcast weight quadruple. Channels padded up to a multiple
of 4 carry zero weights. Output positions are flat (oy * Wq + ox), rounded up to whole vectors
of 16; the border columns are computed and cropped (ARM's sdot is the same step on 4 positions).
The input operand's type is the target's: x86's vpdpbusd multiplies unsigned by signed bytes,
ARM's sdot signed by signed. Codes of the other type are shifted by 128 on the way into the
layout (int8 q -> q + 128, uint8 q -> q - 128) and the epilogue's bias takes shift * sum(w)
back out, exactly. Then the shared fixed-point epilogue, one multiplier per channel.

A layer with few input channels (an RGB image; one channel, a grayscale image: LeNet's, the
digits model's conv1) would leave a quarter (three quarters) of every step padding. Its kernel
columns are folded into channels (primitives/column_fold): a step takes 4 (2) codes of
neighbouring kernel columns and channels of one row, and a conv strided across (AlexNet's conv1)
loses its horizontal phases. Measured on AlexNet (AMD EPYC znver1, AVX2 build, whole model, 2
threads, in turns, 10 x 200 runs): conv1 alone 3.94 -> 2.77 ms, the model 8.68 -> 7.48 ms, the
same outputs.

A conv whose kernel covers its whole unpadded input (one output position: SVHN ConvNet's conv7,
5x5 over 5x5) would compute 16 flat positions for 1. It is a dense product instead
(`covers_input`): the NCHW image read as one vector of Ci*H*W codes, in the weights' own
(Ci, KH, KW) order, through int8_dense's kernel and schedule (steps over 16 output channels).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..formats import Format
from . import column_fold, conv_layout, grouped_layout, int8_dense, pair_sums, requantize, roles
from .conv_layout import ConvGeometry, _ceil, code_shift, np_windows, te_dense_taps
from .dense_layout import DenseShape
from .int8_weights import WIDE_OPERAND, Int8Weights, check_bound, epilogue, group_of, max_weight
from .record import Primitive, Site, rule_of

STEM = "int8_conv2d"
RULE = rule_of(STEM)
POSITIONS_PER_STEP = 16  # output positions per dot-product step (one 512-bit vector of int32)


# Steps rounded up to a multiple of 4 (or 2) where that adds at most MAX_EXTRA_STEPS of them: the
# schedule's register tile can then take 2 or 4 vectors of positions (a prime count, such as the
# 23 of an 18x18 map, left it one, 4 accumulators). SVHN ConvNet's 18x18 convs (AMD EPYC znver5,
# AVX-512 VNNI, fastest of 3 x 5 x 20 runs): 19.6 -> 13.1 and 25.8 -> 17.1 us.
STEP_MULTIPLES = (4, 2)
MAX_EXTRA_STEPS = 0.1
# Step counts the schedule tiles as they are (schedules/dot_product's rp candidates), left
# unpadded: an odd count divisible by 3 takes 3 vectors of positions a tile where it was padded
# to a multiple of 4. SVHN ConvNet's conv1 (36x36 outputs, kernel columns folded: 81 steps, were
# 84) then computes exactly its outputs, and its crop is no copy (dot_product: the epilogue writes
# the output). An even count is not padded to a multiple of 4 either (tiles of 2): AlexNet's conv1,
# 190 steps (were 192), measured against 192 (AMD EPYC znver4, the layer alone, both forms in
# turns, 30 x 50 runs): 0.955x the time (AVX-512 VNNI), 0.986x (AVX2 build), the same outputs.
TILE_STEPS = (4, 3, 2)


def positions(geo: ConvGeometry) -> int:
    """Flat output positions computed: every valid one (oy * Wq + ox), whole vectors, rounded up
    to a multiple of 2 or 4 vectors where that costs little (all within te_flat's zero tail), or
    not at all where the steps are a multiple of a tile already (TILE_STEPS)."""
    steps = _ceil(geo.ho * geo.wq, POSITIONS_PER_STEP)
    if any(steps % m == 0 for m in TILE_STEPS):
        return steps * POSITIONS_PER_STEP
    for m in STEP_MULTIPLES:
        padded = _ceil(steps, m) * m
        if padded * POSITIONS_PER_STEP <= geo.out_flat and padded - steps <= MAX_EXTRA_STEPS * steps:
            return padded * POSITIONS_PER_STEP
    return steps * POSITIONS_PER_STEP


def covers_input(geo: ConvGeometry) -> bool:
    """The kernel covers the whole unpadded input: one output position, a dense product over
    the image (tap (c, ky, kx) reads input (c, ky, kx))."""
    return geo.pad == (0, 0, 0, 0) and geo.step == 1 and (geo.kh, geo.kw) == (geo.h, geo.w)


def as_dense(site: Site) -> Site:
    """The site of the dense product a conv that covers its input is."""
    geo = site.geo
    return replace(site, geo=DenseShape(geo.n, geo.ci * geo.h * geo.w, geo.co))


def image_read(x, geo: ConvGeometry, pixel=None):
    """`read(i, t)` of the dense kernels (int8_dense.te_accumulate): code t of the NCHW image i
    read as one vector of Ci*H*W codes, in the weights' own (Ci, KH, KW) order (a conv that covers
    its input: ternary_conv2d_dot uses it too). `pixel(n, c, y, x)`: the code at that pixel where
    x is not the codes themselves (row_reads.window_max: x is a max pool's input)."""
    plane = geo.h * geo.w
    pixel = pixel or (lambda n, c, y, xx: x[n, c, y, xx])
    return lambda i, t: pixel(i, t // plane, t % plane // geo.w, t % geo.w)


def pack(layer, geo: ConvGeometry, operand: str = "uint8") -> Int8Weights:
    """The layer's weights for dot products over `operand` codes (checked to sum exactly in int32)."""
    check_bound(layer.in_dtype if operand == WIDE_OPERAND else operand, layer.codes, layer.name)
    if covers_input(geo):
        return int8_dense.block_weights(layer.codes.reshape(geo.co, -1), operand)
    return Int8Weights(pack_weights(layer.codes, geo, operand), operand, max_weight(layer.codes))


def pack_weights(w: np.ndarray, geo: ConvGeometry, operand: str = "uint8") -> np.ndarray:
    """[Co, Ci/G, sh, sw, KHq, KWq, G]: phase taps (conv_layout), G = group_of(operand) channels
    innermost; int8, or int16 for int16 operands (vpmaddwd multiplies int16 by int16)."""
    group = group_of(operand)
    if (fold := column_fold.folded(geo, group)) is not None:  # [Co, Ci*KW, 1, 1, KH, 1, G]
        w, geo = column_fold.fold_kernel(w), fold
    k = geo.phase_kernel(w.astype(np.int16 if operand == WIDE_OPERAND else np.int8))
    cg = _ceil(geo.ci, group)
    k = np.pad(k, ((0, 0), (0, cg * group - geo.ci)) + ((0, 0),) * 4)
    k = k.reshape(geo.co, cg, group, *k.shape[2:])
    return np.ascontiguousarray(k.transpose(0, 1, 3, 4, 5, 6, 2))


def unpack(wt: np.ndarray, geo: ConvGeometry) -> np.ndarray:
    """Inverse of pack_weights: [Co, Ci, KH, KW]."""
    co, cg, group = wt.shape[0], wt.shape[1], wt.shape[-1]
    if (fold := column_fold.folded(geo, group)) is not None:
        return column_fold.unfold_kernel(unpack(wt, fold), geo)
    k = wt.transpose(0, 1, 6, 2, 3, 4, 5).reshape(co, cg * group, *wt.shape[2:6])
    return geo.unphase_kernel(k[:, : geo.ci])


def compute(x, weights: Int8Weights, consts, site: Site):
    """TE definition. x: [N, Ci, H, W] 8-bit; weights: from `pack`, with the type the dot
    products read the input codes in (shifted by 128 if it is not x's)."""
    return _compute(x, weights, consts, site)


def takes_quantize(site: Site, weights: Int8Weights, in_dtype: str) -> bool:
    """Whether the layout copy can quantize a float input itself (compute_quantized): a row copy
    of whole rows (column_fold's across stride 1, grouped_layout's), not the dense form."""
    geo, group = site.geo, group_of(weights.operand)
    if covers_input(geo) or geo.step != 1:
        return False
    if column_fold.folded(geo, group) is not None:
        return geo.sw == 1
    return grouped_layout.covers(geo, group)


def compute_quantized(x, weights: Int8Weights, consts, site: Site, quant):
    """compute's output over x, float32, whose codes are input_quantize.InputQuantize `quant`'s:
    the layout copy quantizes the floats it reads (a model's first layer: no quantize kernel on
    one core before it, whose codes the other core then read back). Where takes_quantize."""
    return _compute(x, weights, consts, site, quant)


def takes_pool(site: Site, weights: Int8Weights, in_dtype: str) -> bool:
    """Whether the layout copy can read the input of a max pool before it (compute_pooled): the
    grouped row copy (stride 1, channels not folded)."""
    geo, group = site.geo, group_of(weights.operand)
    if covers_input(geo) or column_fold.folded(geo, group) is not None:
        return False
    return grouped_layout.covers(geo, group)


def compute_pooled(x, weights: Int8Weights, consts, site: Site, pool):
    """compute's output over x, the input of max pool `pool` (int8_max_pool.Pool) that gives the
    conv its input: the layout copy takes each code as its window's max (no pool kernel on one
    core before the conv: the BWN SVHN ConvNet's pools). Where takes_pool."""
    return _compute(x, weights, consts, site, pool=pool)


def _compute(x, weights: Int8Weights, consts, site: Site, quant=None, pool=None):
    from tvm import te

    geo, epi, zp, w, operand = site.geo, site.epi, site.zp, weights.w, weights.operand
    if covers_input(geo):
        y = int8_dense.te_padded(x, weights, consts, as_dense(site), read=image_read(x, geo))
        return te.compute(geo.out_shape(), lambda n, c, oy, ox: y[n, c], name="crop")
    group = group_of(operand)
    if (fold := column_fold.folded(geo, group)) is not None:  # kernel columns folded into channels
        xf, geo = column_fold.te_layout(x, geo, zp, group, operand, quant=quant), fold
    else:
        xf = grouped_layout.te_layout(x, geo, zp, group, operand, quant=quant, pool=pool)
    shape = (geo.n, geo.co, positions(geo))
    chunk = _pair_chunk(site, weights, geo.grouped(group))
    if chunk is not None:
        acc = pair_sums.te_conv_acc(xf, w, geo.grouped(group), shape[2], chunk)
    else:
        taps, offset = te_dense_taps(geo.grouped(group), "acc")
        j = te.reduce_axis((0, group), name="j_acc")
        acc = te.compute(shape, lambda n, c, p: te.sum(
            xf[n, p + offset, j].astype("int32") * w[(c, *taps, j)].astype("int32"), axis=[*taps, j]),
            name="acc", attrs=roles.attrs(roles.ACCUMULATOR))
    f = requantize.te_apply(epi, acc, None, consts, index_channel=lambda idx: idx[1])
    y = te.compute(shape, lambda *i: f(i), name=roles.EPILOGUE_NAME, attrs=roles.epilogue_attrs(RULE))
    return te.compute(geo.out_shape(), lambda n, c, oy, ox: y[n, c, oy * geo.wq + ox], name="crop")


def _pair_chunk(site: Site, weights: Int8Weights, geo: ConvGeometry) -> int | None:
    """Channel groups a chunk of int16 pair sums takes over grouped geometry `geo`, or None
    (pair_sums.chunk_of)."""
    return pair_sums.chunk_of(site.isa, weights.operand, weights.max_weight, geo.ci, geo.sh * geo.sw * geo.khq * geo.kwq)


def pair_sums_used(site: Site, weights: Int8Weights) -> bool:
    """Whether `compute` sums the layer's product pairs in int16 (the geometry it reduces over:
    kernel columns folded where column_fold folds them; a conv covering its input is a dense product)."""
    geo, group = site.geo, group_of(weights.operand)
    if covers_input(geo):
        return int8_dense.pair_sums_used(site, weights)
    return _pair_chunk(site, weights, (column_fold.folded(geo, group) or geo).grouped(group)) is not None


def reference(qx: np.ndarray, weights: Int8Weights, site: Site) -> np.ndarray:
    geo, epi, zp, w, operand = site.geo, site.epi, site.zp, weights.w, weights.operand
    if covers_input(geo):
        return int8_dense.reference(qx.reshape(geo.n, -1), weights, as_dense(site)).reshape(geo.out_shape())
    s = code_shift(str(qx.dtype), operand)  # the same shifted codes the kernel multiplies
    qx, zp = (qx.astype(np.int16) + s).astype(operand), zp + s
    win = np_windows(qx, geo, zp)  # n, ho, wo, K
    acc = np.einsum("nhwk,ck->nchw", win, unpack(w, geo).reshape(geo.co, -1).astype(np.int64))
    return requantize.np_apply(epi, acc, None, channel_axis=1)



PRIMITIVE = Primitive("conv2d", Format.INT8, STEM, "int8", conv_layout.geometry, pack, compute, reference, epilogue,
                      pair_sums=pair_sums_used, takes_quantize=takes_quantize, compute_quantized=compute_quantized,
                      takes_pool=takes_pool, compute_pooled=compute_pooled)
