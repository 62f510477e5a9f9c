"""Ternary conv2d in packed form: two bit-planes, 2 bits per weight.

bit_planes holds one bit per tap (ci, ky, kx) for +1 weights, one for -1, 32 taps per uint32
word. The kernel walks every tap (dense in K), decodes the two bits in registers and
adds the input code where a bit is set: the weights take 16x less memory than FP32 whatever the
sparsity, at the cost of visiting the zero taps too. Same flat input layout as the sparse form.
A conv of few output positions runs its windows through the dot product instead (packed_windows).

Input codes are shifted into the dot products' operand type (int8_weights.dot_operand: uint8 on
x86, int8 on ARM) in both forms, so one epilogue (int8_weights.epilogue) takes the shift back out.
"""
from __future__ import annotations

import numpy as np

from ..formats import Format
from . import conv_layout, packed_windows, requantize, roles
from .bit_planes import BitPlanes, te_bit, unpack_bits
from .conv_layout import ConvGeometry, acc_dtype, code_shift, np_windows, position, space, te_dense_taps, te_flat, te_output
from .int8_weights import epilogue
from .record import Primitive, Site, rule_of

STEM = "ternary_conv2d_packed"
RULE = rule_of(STEM)


def pack(layer, geo: ConvGeometry, operand: str = "uint8"):
    """Bit-planes over the taps in the kernel's reduction order (conv_layout.phase_kernel), or the
    windows' words (packed_windows)."""
    if packed_windows.covers(geo):
        return packed_windows.pack(layer, geo, operand)
    return BitPlanes.of(geo.phase_kernel(layer.codes).reshape(geo.co, -1), operand)


def compute(x, w: BitPlanes, consts, site: Site):
    """TE definition: every tap visited, its two bits decoded."""
    from tvm import te, tirx

    if packed_windows.covers(site.geo):
        return packed_windows.compute(x, w, consts, site)
    geo, planes = site.geo, w.planes
    acc = acc_dtype(w.operand, w.taps)
    xf = te_flat(x, geo, site.zp, dtype=w.operand)
    zero = tirx.const(0, acc)
    out_space = space(geo)

    def sum_plane(plane, name):
        axes, offset = te_dense_taps(geo, name)
        ci, kyr, kxr, kyq, kxq = axes
        k = (((ci * geo.sh + kyr) * geo.sw + kxr) * geo.khq + kyq) * geo.kwq + kxq

        def term(n, c, *pos):
            v = xf[n, position(geo, pos) + offset].astype(acc)
            return te.sum(tirx.Select(te_bit(planes, c, plane, k) != 0, v, zero), axis=axes)

        return te.compute((geo.n, geo.co, *out_space), term, name=name, attrs=roles.attrs(roles.ACCUMULATOR))

    acc_p, acc_n = sum_plane(0, "acc_p"), sum_plane(1, "acc_n")
    f = requantize.te_apply(site.epi, acc_p, acc_n, consts, index_channel=lambda idx: idx[1])
    tag = roles.epilogue_attrs(RULE)
    return te_output(te.compute((geo.n, geo.co, *out_space), lambda *i: f(i), name=roles.EPILOGUE_NAME, attrs=tag), geo)


def takes_pool(site: Site, w, in_dtype: str) -> bool:
    """Whether the kernel can read the input of a max pool before it (compute_pooled): the windows
    of a conv of few positions (packed_windows), whose grouped layout copy stages each row."""
    return packed_windows.covers(site.geo) and packed_windows.takes_pool(site.geo)


def compute_pooled(x, w, consts, site: Site, pool):
    """compute's output over x, the input of max pool `pool` (int8_max_pool.Pool) that gives the
    conv its input: the layout copy takes each code as its window's max (the digits model's pools
    before its 2x2 and 1x1 convs). Where takes_pool."""
    return packed_windows.compute(x, w, consts, site, pool=pool)


def reference(qx: np.ndarray, w: BitPlanes, site: Site) -> np.ndarray:
    """numpy: decode the planes, then the same integer sums (im2col) of the same shifted codes and
    epilogue."""
    if packed_windows.covers(site.geo):
        return packed_windows.reference(qx, w, site)
    geo = site.geo
    k = geo.planes * geo.khq * geo.kwq
    signs = geo.unphase_kernel(unpack_bits(w.planes, k)).reshape(geo.co, -1).astype(np.int64)
    shift = code_shift(str(qx.dtype), w.operand)
    win = np_windows(qx, geo, site.zp) + shift  # n, ho, wo, K (the padding's zero point shifted too)
    acc_p = np.einsum("nhwk,ck->nchw", win, (signs > 0).astype(np.int64))
    acc_n = np.einsum("nhwk,ck->nchw", win, (signs < 0).astype(np.int64))
    return requantize.np_apply(site.epi, acc_p, acc_n, channel_axis=1)


PRIMITIVE = Primitive("conv2d", Format.PACKED, STEM, "ternary", conv_layout.geometry, pack, compute, reference, epilogue,
                      takes_pool=takes_pool, compute_pooled=compute_pooled)
