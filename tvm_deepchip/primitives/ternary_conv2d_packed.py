"""Ternary conv2d in packed form: two bit-planes, 2 bits per weight.

planes[c, 0] holds one bit per tap (ci, ky, kx) for +1 weights, planes[c, 1] for -1, 32 taps
per uint32 word. The kernel walks every tap (dense in K), decodes the two bits in registers and
adds the input code where a bit is set: the weights take 16x less memory than FP32 whatever the
sparsity, at the cost of visiting the zero taps too. Same flat input layout as the sparse form.
"""
from __future__ import annotations

import numpy as np

from .. import weight_sizes
from . import requantize
from .conv_layout import ConvGeometry, acc_dtype, np_windows, position, space, te_dense_taps, te_flat, te_output

STEM = "ternary_conv2d_packed"
RULE = "deepchip_" + STEM


def pack_bits(signs2d: np.ndarray) -> np.ndarray:
    """[Co, K] signs -> uint32 [Co, 2, ceil(K/32)] bit-planes (+1 plane, -1 plane), LSB first."""
    co, k = signs2d.shape
    words = -(-k // 32)
    planes = np.zeros((co, 2, words * 32), np.uint64)
    planes[:, 0, :k] = signs2d > 0
    planes[:, 1, :k] = signs2d < 0
    weights = (np.uint64(1) << np.arange(32, dtype=np.uint64))
    return (planes.reshape(co, 2, words, 32) * weights).sum(-1).astype(np.uint32)


def unpack_bits(planes: np.ndarray, k: int) -> np.ndarray:
    bits = (planes[..., None] >> np.arange(32, dtype=np.uint32)) & 1
    bits = bits.reshape(planes.shape[0], 2, -1)[:, :, :k].astype(np.int8)
    return bits[:, 0] - bits[:, 1]


def pack(signs: np.ndarray, geo: ConvGeometry) -> np.ndarray:
    """Bit-planes over the taps in the kernel's reduction order (conv_layout.phase_kernel)."""
    return pack_bits(geo.phase_kernel(signs).reshape(geo.co, -1))


def te_bit(planes, c, plane, k):
    """The weight bit of tap k of channel c, decoded from its word (TE expression)."""
    from tvm import tirx

    word = planes[c, plane, k // 32]
    return (word >> (k % 32).astype("uint32")) & tirx.const(1, "uint32")


def compute(x, planes, consts, geo: ConvGeometry, epi: requantize.Epilogue, zp: int, taps: int):
    """TE definition. `taps`: the largest +1 or -1 count of a channel (accumulator bound)."""
    from tvm import te, tirx

    acc = acc_dtype(x.dtype, taps)
    xf = te_flat(x, geo, zp)
    zero = tirx.const(0, acc)
    out_space = space(geo)

    def sum_plane(plane, name):
        axes, offset = te_dense_taps(geo, name)
        ci, kyr, kxr, kyq, kxq = axes
        k = (((ci * geo.sh + kyr) * geo.sw + kxr) * geo.khq + kyq) * geo.kwq + kxq

        def term(n, c, *pos):
            v = xf[n, position(geo, pos) + offset].astype(acc)
            return te.sum(tirx.Select(te_bit(planes, c, plane, k) != 0, v, zero), axis=axes)

        return te.compute((geo.n, geo.co, *out_space), term, name=name)

    acc_p, acc_n = sum_plane(0, "acc_p"), sum_plane(1, "acc_n")
    f = requantize.te_apply(epi, acc_p, acc_n, consts, index_channel=lambda idx: idx[1])
    tag = {"schedule_rule": RULE}
    return te_output(te.compute((geo.n, geo.co, *out_space), lambda *i: f(i), name="epilogue", attrs=tag), geo)


def reference(qx: np.ndarray, planes: np.ndarray, geo: ConvGeometry, epi, zp: int) -> np.ndarray:
    """numpy: decode the planes, then the same integer sums (im2col) and epilogue."""
    k = geo.planes * geo.khq * geo.kwq
    signs = geo.unphase_kernel(unpack_bits(planes, k)).reshape(geo.co, -1).astype(np.int64)
    win = np_windows(qx, geo, zp)  # n, ho, wo, K
    acc_p = np.einsum("nhwk,ck->nchw", win, (signs > 0).astype(np.int64))
    acc_n = np.einsum("nhwk,ck->nchw", win, (signs < 0).astype(np.int64))
    return requantize.np_apply(epi, acc_p, acc_n, channel_axis=1)


def weight_bytes(planes: np.ndarray) -> int:
    """What the kernel reads at run time: the bit-planes over the (phase-split) taps."""
    return weight_sizes.bit_planes_bytes(planes.shape[0], planes.shape[2] * weight_sizes.WORD_BITS)
