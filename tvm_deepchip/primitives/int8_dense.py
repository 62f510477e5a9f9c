"""int8 x 8-bit dense with int32 accumulation, in the dot-product form over output channels.

acc[n, c] = sum_k x[n, k] * w[c, k], one step of which is

    acc[n, c:c+16] += sum_j x[n, 4q + j] * w[c:c+16, 4q + j]        (j < G)

one group of G input codes broadcast against 16 x G consecutive weights: the channels shape of
the ISA's dot-product instruction (schedules/dot_intrinsics.py: VNNI `vpdpbusd` on uint8 codes,
G = 4; `vpmaddwd` on int16 codes, G = 2; ARM `sdot` on int8 codes, G = 4). Weights are stored
[Co/16, K/G, 16, G] in int8 (channels and K padded with zero weights; next to `vpmaddwd`'s int16
codes, int16 where they fit the caches, else int8 sign-extended as they are loaded: weight_dtype);
input codes of the other 8-bit
type are shifted by 128 into the operand and the epilogue takes shift * sum(w) back out
(int8_weights.epilogue). The padded channels are computed and cropped.
"""
from __future__ import annotations

import numpy as np

from ..formats import Format
from . import dense_layout, pair_sums, requantize, roles
from .conv_layout import _ceil, code_shift
from .int8_weights import WIDE_OPERAND, Int8Weights, check_bound, epilogue, group_of, max_weight
from .record import Primitive, Site, rule_of

STEM = "int8_dense"
RULE = rule_of(STEM)
CHANNELS_PER_STEP = 16  # output channels per dot-product step (one 512-bit vector of int32)
# Next to int16 codes, weights of at least this many bytes as int16 are stored as int8 instead
# (vpmaddwd steps sign-extend them as they load them). Measured on an AMD EPYC znver1 (AVX2
# build, 2 threads, each layer alone, fastest of 15 x 200 runs): AlexNet's fc3 (1000 x 4096,
# 8.2 MB as int16: read from memory each image) 239 -> 157 us; the MLP's fc1 (512 x 784, 0.8 MB:
# half of it per core, in its L2) 11.4 -> 14.2 us, where the extra widening costs more than the
# bytes save.
INT8_STORAGE_MIN_BYTES = 2 << 20


def pack(layer, shape=None, operand: str = "uint8") -> Int8Weights:
    """[Co/16, K/G, 16, G] for dot products over `operand` codes (checked to sum exactly in int32)."""
    check_bound(layer.in_dtype if operand == WIDE_OPERAND else operand, layer.codes, layer.name)
    return block_weights(layer.codes, operand)


def weight_dtype(operand: str, count: int) -> str:
    """The type `count` weights are stored in for dot products over `operand` codes: int8, except
    next to int16 codes (x86 vpmaddwd), where weights that fit the caches stay int16 and only
    larger ones are int8, sign-extended as they are loaded (INT8_STORAGE_MIN_BYTES)."""
    if operand != WIDE_OPERAND:
        return "int8"
    return "int8" if 2 * count >= INT8_STORAGE_MIN_BYTES else "int16"


def block_weights(w: np.ndarray, operand: str) -> Int8Weights:
    """Weights [Co, K] in the dot-product layout [Co/16, K/G, 16, G] (zero padded), in
    weight_dtype's type."""
    group = group_of(operand)
    co, k = w.shape
    cp, kp = _ceil(co, CHANNELS_PER_STEP) * CHANNELS_PER_STEP, _ceil(k, group) * group
    wp = np.zeros((cp, kp), weight_dtype(operand, cp * kp))
    wp[:co, :k] = w
    blocked = wp.reshape(cp // CHANNELS_PER_STEP, CHANNELS_PER_STEP, kp // group, group).transpose(0, 2, 1, 3)
    return Int8Weights(np.ascontiguousarray(blocked), operand, max_weight(w))


def unpack(wt: np.ndarray, co: int, k: int) -> np.ndarray:
    """Inverse of pack: [Co, K]."""
    cb, kg, lanes, group = wt.shape
    return wt.transpose(0, 2, 1, 3).reshape(cb * lanes, kg * group)[:co, :k]


def pair_chunk(site: Site, weights: Int8Weights) -> int | None:
    """Input groups (one step each) a chunk of int16 pair sums takes, or None (pair_sums.chunk_of)."""
    return pair_sums.chunk_of(site.isa, weights.operand, weights.max_weight, int(weights.w.shape[1]), 1)


def te_accumulate(x, weights: Int8Weights, k: int, read=None, chunk: int | None = None, quant=None):
    """acc[n, c] = sum over the K input codes (shifted into the operand type) times weights
    (TE), over all the padded channels of `weights` (its layout: `block_weights`). `read(i, t)`:
    input code t of image i (default x[i, t]; a conv over its whole input reads its NCHW image);
    `chunk`: through int16 pair sums of that many groups (pair_chunk); `quant`
    (input_quantize.InputQuantize): x holds floats, quantized as the groups are copied."""
    from tvm import te, tirx

    w, operand = weights.w, weights.operand
    cb, kg, lanes, group = (int(s) for s in w.shape)
    n = int(x.shape[0])
    shift = code_shift(quant.dtype if quant is not None else str(x.dtype), operand)
    read = read or (lambda i, t: x[i, t] if quant is None else quant.te_codes(x[i, t].asobject()))
    # the input codes in groups, in the operand's type (the padded tail multiplies zero weights)
    xg = te.compute((n, kg, group), lambda i, q, j: (
        read(i, tirx.min(q * group + j, k - 1)).astype("int16") + shift).astype(operand),
        name="xgroups", attrs=roles.attrs(roles.LAYOUT))
    if chunk is not None:
        return pair_sums.te_dense_acc(xg, w, chunk)
    q = te.reduce_axis((0, kg), name="q_acc")
    j = te.reduce_axis((0, group), name="j_acc")
    return te.compute((n, cb * lanes), lambda i, c: te.sum(
        xg[i, q, j].astype("int32") * w[c // lanes, q, c % lanes, j].astype("int32"), axis=[q, j]),
        name="acc", attrs=roles.attrs(roles.ACCUMULATOR))


def compute(x, weights: Int8Weights, consts, site: Site):
    """TE definition. x: [N, K] 8-bit codes; weights: from `pack`."""
    from tvm import te

    y = te_padded(x, weights, consts, site)
    return te.compute(site.geo.out_shape(), lambda n, c: y[n, c], name="crop")


def compute_quantized(x, weights: Int8Weights, consts, site: Site, quant):
    """compute's output over x, float32, whose codes are input_quantize.InputQuantize `quant`'s:
    quantized as the input groups are copied (a model's first layer: no quantize kernel before)."""
    from tvm import te

    y = te_padded(x, weights, consts, site, quant=quant)
    return te.compute(site.geo.out_shape(), lambda n, c: y[n, c], name="crop")


def te_padded(x, weights: Int8Weights, consts, site: Site, read=None, quant=None):
    """The epilogue's output over the padded channels [N, Co rounded up to 16] (TE; the block
    carrying this primitive's schedule rule); `read`, `quant` as te_accumulate's."""
    from tvm import te, tirx

    geo = site.geo
    acc = te_accumulate(x, weights, geo.k, read, pair_chunk(site, weights), quant)
    shape = tuple(int(s) for s in acc.shape)
    last = geo.co - 1  # padded channels read the last channel's constants; they are cropped
    f = requantize.te_apply(site.epi, acc, None, consts, index_channel=lambda idx: tirx.min(idx[1], last))
    return te.compute(shape, lambda *i: f(i), name=roles.EPILOGUE_NAME, attrs=roles.epilogue_attrs(RULE))


def reference(qx: np.ndarray, weights: Int8Weights, site: Site) -> np.ndarray:
    """numpy: the same shifted codes times the same weights, the same integer epilogue."""
    geo = site.geo
    xs = qx.astype(np.int64) + code_shift(str(qx.dtype), weights.operand)
    acc = xs @ unpack(weights.w, geo.co, geo.k).astype(np.int64).T
    return requantize.np_apply(site.epi, acc, None, channel_axis=1)


def pair_sums_used(site: Site, weights: Int8Weights) -> bool:
    return pair_chunk(site, weights) is not None


PRIMITIVE = Primitive("dense", Format.INT8, STEM, "int8", dense_layout.geometry, pack, compute, reference, epilogue,
                      pair_sums=pair_sums_used, takes_quantize=lambda *_: True, compute_quantized=compute_quantized)
