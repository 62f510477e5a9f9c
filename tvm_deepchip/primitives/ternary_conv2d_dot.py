"""Ternary conv2d in the dot-product form, for a conv whose kernel covers its whole unpadded input
(one output position): ternary_dense_dot's kernel and schedule over the NCHW image read as one
vector of Ci*H*W codes, in the weights' own (Ci, KH, KW) order (int8_conv2d does the same for
int8 weights: `int8_conv2d.covers_input`).

Such a conv is a dense layer: one product of every weight with one input code. The sparse forms
gather-add its non-zero taps one scalar at a time (one position: nothing to vectorize across);
the dot form multiplies every weight, zeros too, 64 a VNNI instruction. The bundled digits
model's conv7 is such a conv (1x1 on a 1x1 map, 128 codes to 512 channels: 3.1 us in index rows,
1.07 us here, AVX-512 VNNI build on an AMD EPYC znver5; 3.2 / 1.16 us AVX2), and so is a conv whose
kernel overhangs a small map once `dead_taps.crop` has cut it to the map. format_rule makes it the
default for many channels of short lists (`format_rule.DOT_MIN_CHANNELS` and the bounds beside it).
"""
from __future__ import annotations

from dataclasses import replace

from ..formats import Format
from . import conv_layout, int8_dense, row_reads, ternary_dense_dot
from .int8_conv2d import as_dense, covers_input, image_read
from .int8_weights import Int8Weights, epilogue
from .record import Primitive, Site, rule_of

STEM = "ternary_conv2d_dot"
RULE = rule_of(STEM)  # registered beside ternary_dense_dot's: the same kernel, the same schedule


def geometry(layer, in_shape):
    """conv_layout's geometry, for a conv that covers its input (else a clear error)."""
    return conv_layout.geometry_where(layer, in_shape, covers_input, "dot",
                                      "where its kernel covers its whole unpadded input (one output position)")


def pack(layer, geo, operand: str = "uint8") -> Int8Weights:
    """The dense form's two 0/1 planes of the [Co, Ci*KH*KW] codes."""
    return ternary_dense_dot.pack(replace(layer, codes=layer.codes.reshape(geo.co, -1)), None, operand)


def compute(x, weights: Int8Weights, consts, site: Site, pixel=None):
    """TE definition. x: [N, Ci, H, W] 8-bit codes; weights: from `pack`. `pixel`: image_read's,
    where x is not the codes themselves (compute_pooled)."""
    from tvm import te

    geo = site.geo
    y = ternary_dense_dot.te_padded(x, weights, consts, as_dense(site), read=image_read(x, geo, pixel), rule=RULE)
    return te.compute(geo.out_shape(), lambda n, c, oy, ox: y[n, c], name="crop")


def takes_pool(site: Site, weights: Int8Weights, in_dtype: str) -> bool:
    """Whether the kernel can read the input of a max pool before it (compute_pooled): always (it
    reads its one window pixel by pixel)."""
    return True


def compute_pooled(x, weights: Int8Weights, consts, site: Site, pool):
    """compute's output over x, the input of max pool `pool` (int8_max_pool.Pool) that gives the
    conv its input: each input code read as its window's max (the digits model's last pool, before
    its 1x1 conv on a 1x1 map: no pool kernel of its own)."""
    return compute(x, weights, consts, site, pixel=row_reads.window_max(x, pool))


def reference(qx, weights: Int8Weights, site: Site):
    """numpy: the dense form's reference over the flattened image."""
    geo = site.geo
    return ternary_dense_dot.reference(qx.reshape(geo.n, -1), weights, as_dense(site)).reshape(geo.out_shape())


PRIMITIVE = Primitive("conv2d", Format.DOT, STEM, "ternary", geometry, pack, compute, reference, epilogue,
                      pair_sums=int8_dense.pair_sums_used, takes_pool=takes_pool,
                      compute_pooled=compute_pooled)
