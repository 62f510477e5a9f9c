"""ternary_conv2d_sparse: bit-exact against its numpy reference over fuzzed shapes (tests/primitive_cases.py),
and over a layer big enough for the two-core schedule (one parallel loop over chunks of positions)."""
import numpy as np
import pytest
import tvm

from primitive_cases import all_classes, check, conv_suite, make_layer, target
from tir_loops import loops as _loops
from tvm_deepchip import primitives
from tvm_deepchip.schedules import schedule_func

test_bit_exact, test_saturated_input_and_batch, test_tuned_schedule_bit_exact = conv_suite("sparse", "ternary")

BIG = (128, 96, 3, 1, 40, 40)  # Co, Ci, k, pad, H, W: above PARALLEL_MIN_LANES at 90% zeros


def _big_layer(seed=0):
    co, ci, k, pad, h, w = BIG
    layer = make_layer(np.random.default_rng(seed), "conv2d", "ternary", (co, ci, k, k), pad=pad, sparsity=0.9)
    return layer, (1, ci, h, w)


def test_big_layer_is_one_parallel_loop_over_positions():
    layer, shape = _big_layer()
    lowered = primitives.lower_layer(layer, shape, "sparse")
    func = schedule_func(primitives.prim_func(lowered), target())
    loops = _loops(func.body)
    parallel = [lp for lp in loops if lp.kind == tvm.tirx.ForKind.PARALLEL]
    assert len(parallel) == 1, f"{len(parallel)} parallel loops"  # (below the threshold: none; before: three)
    # the row sums and the channels' epilogue both run inside that loop (their chunk of positions)
    inside = _loops(parallel[0].body)
    assert any(lp.kind == tvm.tirx.ForKind.VECTORIZED for lp in inside)
    assert int(parallel[0].extent) >= 2


@pytest.mark.parametrize("cls", all_classes())
def test_big_layer_bit_exact(cls):
    layer, shape = _big_layer(1)
    check(layer, shape, "sparse", np.random.default_rng(2), cls=cls)


@pytest.mark.parametrize("name", ["x86-avx2", "x86-avx512-vnni", "aarch64-neon"])
def test_flat_image_holds_the_classes_tap_type(name):
    """AVX2 stores the codes as int16 (one add from memory a tap); the other classes keep 8 bits.
    (Bit-exactness of each class's build: the suite above.)"""
    from tvm_deepchip import isa
    from tvm_deepchip.primitives import roles

    cls = isa.get(name)
    layer, shape = _big_layer()
    lowered = primitives.lower_layer(layer, shape, "sparse", cls)
    sch = tvm.s_tir.Schedule(primitives.prim_func(lowered))
    layout = [b for b in sch.get_child_blocks(sch.get_sblock("root")) if roles.role_of(sch.get(b)) == roles.LAYOUT]
    assert len(layout) == 1
    stored = str(sch.get(layout[0]).writes[0].source.dtype)
    assert stored == (cls.sparse_taps or layer.in_dtype)
    assert (stored == "int16") == (name == "x86-avx2")


@pytest.mark.parametrize("cls", all_classes())
def test_small_maps_take_the_shortest_vector(cls):
    """2x2 and 4x4 outputs (the digits model's last convs) are 8 and 24 flat positions: one vector
    of 8 int16 lanes and one of 24 (not 16 and 32), bit-exact on every class."""
    from tvm_deepchip.primitives import conv_layout

    rng = np.random.default_rng(4)
    for hw, flat in ((2, 8), (4, 24)):
        geo = conv_layout.ConvGeometry.of((1, 24, hw, hw), (32, 24, 3, 3), (1, 1), (1, 1, 1, 1))
        assert geo.flat and geo.out_flat == flat
        layer = make_layer(rng, "conv2d", "ternary", (32, 24, 3, 3), pad=1, sparsity=0.9)
        check(layer, (1, 24, hw, hw), "sparse", rng, cls=cls)
