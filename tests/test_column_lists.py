"""Column lists (primitives/column_lists, column_walk): the delta lists of a dense layer or a conv
of one output position by input, for inputs that are zero where their codes are (uint8, zero
point 0). Bit-exact against the same numpy reference as the delta walk on every ISA class, over
inputs with many zeros (skipped), none, counts past one head byte, gaps past 255 (hops), one and
two cores' shares; which layers take them."""
import numpy as np
import pytest

import isa_devices
from primitive_cases import all_classes, build, make_layer


def _layer(rng, op, wshape, sparsity, zp=0, in_dtype="uint8"):
    layer = make_layer(rng, op, "ternary", wshape, sparsity=sparsity, in_dtype=in_dtype)
    layer.in_zero_point = zp
    return layer


def _inputs(rng, shape, zeros: float):
    """uint8 codes, `zeros` of them 0 (a ReLU's output), the rest 1-255."""
    q = rng.integers(1, 256, size=shape).astype(np.uint8)
    q[rng.random(shape) < zeros] = 0
    return q


def _check(layer, in_shape, cls, rng, zeros=(0.6, 0.0, 1.0)):
    from tvm_deepchip.primitives.column_lists import ColumnLists

    from tvm_deepchip import targets

    lowered, lib = build(layer, in_shape, "delta", cls=cls, tgt=targets.tvm_target(isa_devices.preset(cls)))
    assert isinstance(lowered_weights(layer, in_shape, cls), ColumnLists)
    qxs = [_inputs(rng, in_shape, z) for z in zeros]
    outs = isa_devices.run(cls, lowered, lib, qxs)
    if outs is None:  # a class this machine cannot run: built and checked for assembly only
        return
    for qx, got in zip(qxs, outs):
        np.testing.assert_array_equal(got, lowered.reference(qx))


def lowered_weights(layer, in_shape, cls=None):
    """The packed weights of the layer's `delta` format."""
    from tvm_deepchip.primitives import ternary_conv2d_delta, ternary_dense_delta

    prim = ternary_dense_delta.PRIMITIVE if layer.op == "dense" else ternary_conv2d_delta.PRIMITIVE
    return prim.pack(layer, prim.geometry(layer, in_shape), None)


@pytest.mark.parametrize("cls", all_classes())
@pytest.mark.parametrize("wshape, in_shape, sparsity", [
    ((128, 200), (1, 200), 0.9),  # one core's share
    ((520, 1000), (2, 1000), 0.9),  # two cores' shares, channels past two slots
    ((600, 64), (1, 64), 0.0),  # ~300 taps a column and sign: counts past one head byte
    ((2000, 100), (1, 100), 0.97),  # a running sum's gaps past 255: hops onto the spare accumulators
])
def test_dense_bit_exact(cls, wshape, in_shape, sparsity):
    rng = np.random.default_rng(sum(wshape))
    _check(_layer(rng, "dense", wshape, sparsity), in_shape, cls, rng)


@pytest.mark.parametrize("cls", all_classes())
def test_conv_of_one_position_bit_exact(cls):
    """A 5x5 conv over a 5x5 image (SVHN ConvNet's conv7 form): the NCHW image read as the inputs."""
    rng = np.random.default_rng(7)
    _check(_layer(rng, "conv2d", (160, 8, 5, 5), 0.9), (1, 8, 5, 5), cls, rng)


def test_which_layers_take_them():
    """uint8 inputs of zero point 0 take column lists; other zero points, int8 inputs, padded or
    strided one-position convs keep the delta lists; their decode gives the same taps."""
    from tvm_deepchip.primitives.column_lists import ColumnLists
    from tvm_deepchip.primitives.delta_lists import DeltaLists
    from tvm_deepchip.primitives.delta_walk import point_lists

    rng = np.random.default_rng(3)
    cls = None
    dense = _layer(rng, "dense", (300, 500), 0.9)
    w = lowered_weights(dense, (1, 500), cls)
    assert isinstance(w, ColumnLists)
    assert w.nbytes() <= point_lists(dense.codes).nbytes()
    for (p, m), (q, n) in zip(w.lists(), point_lists(dense.codes).lists()):
        np.testing.assert_array_equal(p, q)
        np.testing.assert_array_equal(m, n)
    assert isinstance(lowered_weights(_layer(rng, "dense", (300, 500), 0.9, zp=3), (1, 500), cls), DeltaLists)
    assert isinstance(lowered_weights(_layer(rng, "dense", (300, 500), 0.9, zp=0, in_dtype="int8"), (1, 500), cls), DeltaLists)
    assert isinstance(lowered_weights(_layer(rng, "dense", (48, 3000), 0.9), (1, 3000), cls), DeltaLists)  # more bytes by input
    padded = make_layer(rng, "conv2d", "ternary", (16, 8, 3, 3), pad=1)
    padded.in_zero_point = 0
    assert isinstance(lowered_weights(padded, (1, 8, 1, 1), cls), DeltaLists)


def test_shares_split_the_inputs():
    """Two shares where the layer has the taps for two cores: each share's lists begin where
    `starts` says, and the stream ends where the last share's does."""
    from tvm_deepchip.primitives.column_lists import ColumnLists
    from tvm_deepchip.primitives.delta_lists import read_head

    rng = np.random.default_rng(11)
    codes = rng.choice(np.array([-1, 0, 1], np.int8), size=(32, 101), p=[0.1, 0.8, 0.1])
    w = ColumnLists.of(codes, 2)
    assert w.parts == 2 and len(w.starts) == 3 and w.starts[-1] == len(w.stream)
    ptr = 0
    for j in range(101):
        if j == 101 // 2:
            assert ptr == w.starts[1]
        for _ in range(2):
            n, _, _, ptr = read_head(w.stream, ptr)
            ptr += n
    assert ptr == len(w.stream)


def test_long_gaps_hop_and_decode_back():
    """At 97% zeros over 2000 channels a running sum's gaps (four taps apart) pass 255: its hops
    are entries of their own (more entries than taps), and the decode gives back every tap."""
    from tvm_deepchip.primitives.column_lists import ColumnLists

    rng = np.random.default_rng(13)
    codes = rng.choice(np.array([-1, 0, 1], np.int8), size=(2000, 100), p=[0.015, 0.97, 0.015])
    w = ColumnLists.of(codes)
    assert w.entries > np.count_nonzero(codes)
    for c, (plus, minus) in enumerate(w.lists()):
        np.testing.assert_array_equal(plus, np.flatnonzero(codes[c] == 1))
        np.testing.assert_array_equal(minus, np.flatnonzero(codes[c] == -1))
