"""Kernel columns unfolded into planes (conv_layout.unfolded, taken by ternary_conv2d_delta where
the vector adds it saves outweigh its wider copy): the layout reads the same windows as im2col,
the kernel order round-trips, the layers that take it, and the delta conv bit-exact over it on
every ISA class: the whole-output walk, the row tasks, the channel tasks, a max pool's input."""
from dataclasses import replace

import numpy as np
import pytest

import isa_devices
from primitive_cases import all_classes, build_func, check, make_layer, random_input
from tvm_deepchip import primitives
from tvm_deepchip.primitives import conv_layout, int8_max_pool, ternary_conv2d_delta


def _layer(rng, shape, pad=0, sparsity=0.9, **kw):
    return make_layer(rng, "conv2d", "ternary", shape, pad=pad, sparsity=sparsity, **kw)


@pytest.mark.parametrize("shape, in_shape, pad", [
    ((6, 5, 3, 3), (2, 5, 7, 9), 1),
    ((4, 3, 5, 5), (1, 3, 9, 8), 2),
    ((4, 2, 3, 2), (1, 2, 6, 5), (1, 0, 2, 1)),  # asymmetric padding, a 3x2 kernel
])
def test_unfolded_layout_reads_the_windows(shape, in_shape, pad):
    """Every tap's offset from every output's flat base reads the pixel im2col reads; the
    kernel's unfolded order round-trips; the flat positions are exactly the outputs."""
    rng = np.random.default_rng(3)
    layer = _layer(rng, shape, pad=pad if isinstance(pad, int) else 0)
    layer = layer if isinstance(pad, int) else replace(layer, padding=pad)
    geo = conv_layout.unfolded(conv_layout.geometry(layer, in_shape))
    assert geo is not None and geo.unfold == shape[3] and geo.wq == geo.wo and geo.kwq == 1
    qx = rng.integers(0, 256, size=in_shape).astype(np.uint8)
    xf = conv_layout.np_flat(qx, geo, zp=7)
    windows = conv_layout.np_windows(qx, geo, 7)  # [N, Ho, Wo, Ci*KH*KW]
    oy, ox = np.meshgrid(np.arange(geo.ho), np.arange(geo.wo), indexing="ij")
    base = geo.base(oy, ox).reshape(-1)
    assert base.max() < geo.ho * geo.wo  # no border columns
    read = xf[:, base[:, None] + geo.tap_offsets().reshape(-1)[None, :]]
    np.testing.assert_array_equal(read, windows.reshape(geo.n, -1, windows.shape[-1]))
    k = geo.phase_kernel(layer.codes)
    assert k.reshape(geo.co, geo.planes, geo.khq, geo.kwq).shape == (shape[0], shape[1] * shape[3], shape[2], 1)
    np.testing.assert_array_equal(geo.unphase_kernel(k), layer.codes)


def test_which_layers_unfold():
    """Where a row's border columns cost a vector a tap and the layout is small (SVHN ConvNet's
    conv6: 33 flat positions, 25 unfolded) the delta conv unfolds; not where the copy grows more
    than the walk shrinks (ResNet-44's 8x8 and 32x32 maps), nor a layout past an L1 cache
    (AlexNet's 13x13 convs), nor strided, 1x1 or one-position convs."""
    rng = np.random.default_rng(5)
    geometry = ternary_conv2d_delta.geometry
    assert geometry(_layer(rng, (128, 128, 3, 3)), (1, 128, 7, 7)).unfold == 3
    assert geometry(_layer(rng, (64, 64, 3, 3), pad=1), (1, 64, 8, 8)).unfold == 1
    assert geometry(_layer(rng, (16, 16, 3, 3), pad=1), (1, 16, 32, 32)).unfold == 1
    assert geometry(_layer(rng, (256, 384, 3, 3), pad=1, sparsity=0.5), (1, 384, 13, 13)).unfold == 1
    assert geometry(_layer(rng, (32, 16, 3, 3), pad=1, stride=2), (1, 16, 32, 32)).unfold == 1
    assert geometry(_layer(rng, (32, 16, 1, 1)), (1, 16, 8, 8)).unfold == 1
    assert geometry(_layer(rng, (64, 32, 5, 5)), (1, 32, 5, 5)).unfold == 1
    assert geometry(_layer(rng, (128, 128, 3, 3), sparsity=1.0), (1, 128, 7, 7)).unfold == 1  # no taps: no walk


@pytest.mark.parametrize("cls", all_classes())
@pytest.mark.parametrize("shape, in_shape, pad, in_dtype, split", [
    ((32, 48, 3, 3), (1, 48, 7, 7), 0, "uint8", None),  # SVHN ConvNet's conv6 form, the whole output
    ((32, 48, 3, 3), (2, 48, 7, 7), 0, "int8", "rows"),  # 5 output rows: tasks of 3 and 2; batch 2
    ((64, 32, 3, 3), (1, 32, 8, 8), 1, "uint8", "channels"),  # ResNet-44's layer3 form
    ((16, 12, 5, 5), (1, 12, 6, 9), 2, "int8", "rows"),  # 5x5, pad 2: five planes a channel
])
def test_delta_conv_over_unfolded_columns_bit_exact(cls, shape, in_shape, pad, in_dtype, split, monkeypatch):
    """Bit-exact against the reference (itself checked against the float conv by `check`), on
    every class, saturated inputs included, where the layer runs unfolded."""
    rng = np.random.default_rng(41)
    layer = _layer(rng, shape, pad=pad, in_dtype=in_dtype, out=in_dtype, sparsity=0.3)
    monkeypatch.setattr(ternary_conv2d_delta, "PARALLEL_MIN_ROW_LANES", 10**9 if split is None else 0)
    monkeypatch.setattr(ternary_conv2d_delta, "CHANNEL_SPLIT_SHARE", 10.0 if split == "channels" else 0.0)
    geo = ternary_conv2d_delta.geometry(layer, in_shape)
    assert geo.unfold == shape[3]
    tasks = ternary_conv2d_delta.walk_of(geo, ternary_conv2d_delta.pack(layer, geo), in_dtype, cls).tasks
    assert (None if tasks is None else "channels" if tasks.by_channels else "rows") == split
    check(layer, in_shape, "delta", rng, cls=cls)
    check(layer, in_shape, "delta", rng, cls=cls, saturated=True)


@pytest.mark.parametrize("cls", all_classes())
def test_unfolded_conv_over_a_pools_input_bit_exact(cls):
    """A conv6 form after a max pool: its tasks copy each pooled code once per kernel column."""
    rng = np.random.default_rng(43)
    pre_shape, pool = (1, 24, 14, 14), int8_max_pool.Pool((2, 2), (2, 2))
    layer = _layer(rng, (32, 24, 3, 3), sparsity=0.6)
    shape = (*pre_shape[:2], *pool.out_hw(*pre_shape[2:]))
    assert ternary_conv2d_delta.geometry(layer, shape).unfold == 3
    lowered = primitives.lower_layer(layer, shape, "delta", cls)
    assert lowered.te_pooled is not None
    over_pool = replace(lowered, in_shape=pre_shape, te_func=lambda x, *c: lowered.te_pooled(x, pool, *c))
    lib = build_func(over_pool, tgt=isa_devices.preset(cls))
    inputs = [random_input(rng, "uint8", pre_shape), random_input(rng, "uint8", pre_shape, saturated=True)]
    outs = isa_devices.run(cls, over_pool, lib, inputs)
    for got, qx in zip(outs or [], inputs):
        np.testing.assert_array_equal(got, lowered.reference(int8_max_pool.reference(qx, pool)))
