"""Ternary conv2d in DeepChip's sparse form: no multiplication in the inner loop.

Weights are stored as two lists of flat input offsets per output channel (conv_layout): the
taps whose weight is +1 and those whose weight is -1, cut into balanced rows (sparse_rows).

    acc_p[c, p] = sum_j x[p + off_p[c, j]]      acc_n[c, p] = sum_j x[p + off_n[c, j]]
    y[c, p]     = requantize(Wp[c] * acc_p - Wn[c] * acc_n)

Outputs are flat positions p = oy*Wq + ox of conv_layout's (phase-split) image, so vectors span
rows at any stride; tiny outputs iterate (oy, ox). The accumulator is int16 when 255 * taps fits.
Where the target's ISA class says so (Site.taps), the flat image holds the codes as int16.
"""
from __future__ import annotations

import numpy as np

from ..formats import Format
from . import conv_layout, requantize, roles, row_reads, sparse_rows
from .conv_layout import ConvGeometry, np_flat, position, space, te_flat, te_output
from .record import Primitive, Site, rule_of
from .sparse_rows import SignedRows

STEM = "ternary_conv2d_sparse"
RULE = rule_of(STEM)


# A conv whose output is one short vector (conv_layout.SMALL_FLAT_BLOCKS: 2x2 and 4x4 maps) has
# too few positions to split over cores, so its channels are cut into this many parts instead,
# each part's rows stored apart (sparse_rows.pack_rows) for one core to sum and gather.
SMALL_OUTPUT_PARTS = 2


def small_output(geo: ConvGeometry) -> bool:
    """Whether the conv's output is one short vector of flat positions (conv_layout.FLAT_BLOCK)."""
    return geo.flat and geo.out_flat < conv_layout.FLAT_BLOCK


def channel_parts(geo: ConvGeometry) -> int:
    return SMALL_OUTPUT_PARTS if small_output(geo) and geo.co % SMALL_OUTPUT_PARTS == 0 else 1


def pack(layer, geo: ConvGeometry, operand=None) -> SignedRows:
    """Balanced rows of flat tap offsets (conv_layout), padded with the zero tail's offset."""
    taps = geo.tap_offsets().reshape(-1)
    return SignedRows.of(layer.codes, lambda s, value: taps[s.reshape(-1) == value], geo.image, channel_parts(geo))


def compute(x, w: SignedRows, consts, site: Site, pixel=None):
    """TE definition. x: [N, Ci, H, W] 8-bit codes; w: sparse_rows tables; consts: epilogue.
    `pixel`: te_flat's, where x is not the codes themselves (compute_pooled)."""
    from tvm import te

    geo = site.geo
    xf = te_flat(x, geo, site.zp, widen=site.taps, pixel=pixel)
    tag = roles.epilogue_attrs(RULE)
    out_space = space(geo)

    def read(n, pos, off):
        return xf[n, position(geo, pos) + off]

    acc_p, acc_n = sparse_rows.te_signed_sums(read, w, (geo.n, geo.co), out_space, x.dtype)
    f = requantize.te_apply(site.epi, acc_p, acc_n, consts, index_channel=lambda idx: idx[1])
    return te_output(te.compute((geo.n, geo.co, *out_space), lambda *i: f(i), name=roles.EPILOGUE_NAME, attrs=tag), geo)


def takes_pool(site: Site, w: SignedRows, in_dtype: str) -> bool:
    """Whether the kernel can read the input of a max pool before it (compute_pooled): a conv of
    one short vector of outputs (2x2 and 4x4 maps), whose layout copy each core makes itself
    (schedules/common._tile_parts)."""
    return small_output(site.geo)


def compute_pooled(x, w: SignedRows, consts, site: Site, pool):
    """compute's output over x, the input of max pool `pool` (int8_max_pool.Pool) that gives the
    conv its input: the layout copy takes each code as its window's max (no pool kernel between
    two parallel layers: the digits model's second pool). Where takes_pool."""
    return compute(x, w, consts, site, pixel=row_reads.window_max(x, pool))


def reference(qx: np.ndarray, w: SignedRows, site: Site) -> np.ndarray:
    """numpy: the same row sums, gathers and integer epilogue (accumulated in int64: the
    bound makes the kernel's narrower accumulators exact)."""
    geo = site.geo
    xf = np_flat(qx, geo, site.zp).astype(np.int64)
    oy, ox = np.meshgrid(np.arange(geo.ho), np.arange(geo.wo), indexing="ij")
    base = geo.base(oy, ox).reshape(-1)  # [Ho*Wo]

    def sums(rows, rowmap):  # [N, Co, Ho*Wo]
        row_sum = xf[:, base[None, :, None] + sparse_rows.np_offsets(rows)[:, None, :]].sum(-1)  # N, R, P
        return row_sum[:, rowmap, :].sum(2)

    y = requantize.np_apply(site.epi, sums(w.rows_p, w.map_p), sums(w.rows_n, w.map_n), channel_axis=1)
    return y.reshape(geo.out_shape())


PRIMITIVE = Primitive("conv2d", Format.SPARSE, STEM, "ternary", conv_layout.geometry, pack, compute, reference,
                      takes_pool=takes_pool, compute_pooled=compute_pooled)
