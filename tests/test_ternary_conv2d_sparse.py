"""ternary_conv2d_sparse: bit-exact against its numpy reference over fuzzed shapes (tests/primitive_cases.py),
and over a layer big enough for the two-core schedule (one parallel loop over chunks of positions)."""
import numpy as np
import pytest
import tvm

from primitive_cases import all_classes, check, conv_suite, make_layer, target
from tir_loops import loops as _loops
from tir_loops import stored, stores
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


def test_channel_parts_keep_each_parts_rows_apart():
    """pack_rows with parts: a channel's rows (and its table's padding, an all-pad row) lie in its
    part's slice of rows; the sums every channel gathers are those of the one-part packing."""
    from tvm_deepchip.primitives import sparse_rows

    rng = np.random.default_rng(7)
    lists = [np.sort(rng.choice(500, size=rng.integers(0, 60), replace=False)) for _ in range(12)]
    pad = 999
    rows1, map1 = sparse_rows.pack_rows(lists, pad)
    rows, table = sparse_rows.pack_rows(lists, pad, parts=3)
    part_rows = rows.shape[0] // 3
    assert rows.shape[0] == 3 * part_rows and rows.shape[1] == rows1.shape[1]
    for c, lst in enumerate(lists):
        first = (c // 4) * part_rows
        assert ((table[c] >= first) & (table[c] < first + part_rows)).all()
        assert (rows[first + part_rows - 1] == pad).all()  # the part's zero row
        got = rows[table[c]].reshape(-1)
        assert sorted(got[got != pad].tolist()) == sorted(lst.tolist()) == sorted(
            v for v in rows1[map1[c]].reshape(-1).tolist() if v != pad)
    with pytest.raises(ValueError, match="12 channels do not cut into 5 equal parts"):
        sparse_rows.pack_rows(lists, pad, parts=5)


@pytest.mark.parametrize("co, parts", [(64, 2), (65, 1)])
def test_small_maps_split_channel_parts_over_cores(co, parts):
    """A conv whose output is one short vector (a 2x2 map) cuts an even number of channels into
    two parts: one parallel loop over them (22 K row-sum lanes: above PARALLEL_MIN_PART_LANES),
    each part's row sums and its own copy of the input layout inside it (no other parallel loop,
    no copy on one core before it); odd channel counts keep one part
    (one core). Bit-exact either way (every class: the
    suite above and test_small_maps_take_the_shortest_vector)."""
    from tvm_deepchip.primitives import conv_layout, ternary_conv2d_sparse

    rng = np.random.default_rng(9)
    layer = make_layer(rng, "conv2d", "ternary", (co, 32, 3, 3), pad=1, sparsity=0.9)
    assert ternary_conv2d_sparse.channel_parts(conv_layout.geometry(layer, (1, 32, 2, 2))) == parts
    lowered = primitives.lower_layer(layer, (1, 32, 2, 2), "sparse")
    func = schedule_func(primitives.prim_func(lowered), target())
    parallel = [lp for lp in _loops(func.body) if lp.kind == tvm.tirx.ForKind.PARALLEL]
    if parts == 1:
        assert parallel == []
    else:
        assert len(parallel) == 1 and int(parallel[0].extent) == parts
        assert {"xflat_local", "rows_p", "rows_n", "epilogue"} <= stored(parallel[0].body)
        assert stores(func.body, "xflat_local") == stores(parallel[0].body, "xflat_local")
    check(layer, (1, 32, 2, 2), "sparse", rng)


def test_rows_are_stored_four_offsets_a_word():
    """The sparse kernels store their uint16 offsets four to a uint64 word (one load a four taps,
    sparse_rows.in_words), rows padded to a multiple of four: the same offsets in order, the
    bytes of those rows; a dense layer's rows too. The kernels read them bit-exact (the suites
    above, tests/test_ternary_dense_sparse.py)."""
    from types import SimpleNamespace

    from tvm_deepchip.primitives import conv_layout, sparse_rows, ternary_conv2d_sparse, ternary_dense_sparse

    rng = np.random.default_rng(11)
    codes = rng.choice([-1, 0, 1], size=(16, 24, 3, 3), p=[0.05, 0.9, 0.05]).astype(np.int8)
    for hw, pad in ((2, 1), (3, 0)):  # a 2x2 map (two channel parts), one output position
        geo = conv_layout.ConvGeometry.of((1, 24, hw, hw), codes.shape, (1, 1), (pad,) * 4)
        rows = ternary_conv2d_sparse.pack(SimpleNamespace(codes=codes), geo)
        taps = geo.tap_offsets().reshape(-1)
        for value, stored in ((1, rows.rows_p), (-1, rows.rows_n)):
            lists = [taps[c.reshape(-1) == value] for c in codes]
            plain, _ = sparse_rows.pack_rows(lists, geo.image, rows.parts, sparse_rows.OFFSETS_PER_WORD)
            assert stored.dtype == np.uint64 and stored.nbytes == plain.nbytes
            assert plain.shape[1] % 4 == 0 and plain.shape[1] >= sparse_rows.choose_row_length(np.array([len(x) for x in lists]))
            assert np.array_equal(sparse_rows.np_offsets(stored), plain)
            assert sparse_rows.row_length(stored) == plain.shape[1]
    dense = ternary_dense_sparse.pack_signs(codes.reshape(16, -1))
    assert dense.rows_p.dtype == dense.rows_n.dtype == np.uint64
