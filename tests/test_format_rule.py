"""The default format of a ternary layer by its shape (format_rule.py): the delta lists where a
list is walked over at least a vector of positions or a one-position layer's rows would be large,
the index rows elsewhere; and the planner applies it only where nothing else chose."""
import numpy as np
import pytest

import primitive_cases as pc
from tvm_deepchip import format_rule
from tvm_deepchip.format_rule import POINTWISE_MIN_ROW_BYTES, ROW_BYTES_PER_TAP, SPATIAL_MIN_POSITIONS
from tvm_deepchip.formats import Format
from tvm_deepchip.layer_plan import FormatSource
from tvm_deepchip.planner import LayerChoices, choose_format, layer_key


def _conv(ci, co, k, pad, sparsity=0.9):
    return pc.make_layer(np.random.default_rng(0), "conv2d", "ternary", (co, ci, k, k), pad=pad, sparsity=sparsity)


@pytest.mark.parametrize("hw, expected", [
    (4, Format.DELTA),  # 4x4 output, 6 columns with the border: 24 positions
    (2, Format.SPARSE),  # 2 rows of 4: 8 positions
    (8, Format.DELTA),  # 8 rows of 10: 80 positions
    (32, Format.DELTA),
])
def test_spatial_layers_by_the_positions_a_list_is_walked_over(hw, expected):
    assert format_rule.default_ternary(_conv(16, 16, 3, 1), (1, 16, hw, hw)) == expected


def test_the_threshold_counts_the_border_columns_of_a_flat_output():
    # 3x5 output of a 5x7 input without padding: 3 rows of 7 = 21 positions, above the threshold
    assert 3 * 5 < SPATIAL_MIN_POSITIONS <= 3 * 7
    assert format_rule.default_ternary(_conv(16, 16, 3, 0), (1, 16, 5, 7)) == Format.DELTA


@pytest.mark.parametrize("op", ["conv2d", "dense"])
def test_one_position_layers_by_the_bytes_their_rows_would_take(op):
    """A dense layer and a conv whose kernel covers its input (one output position) walk each
    list once: delta only where the uint16 rows would take POINTWISE_MIN_ROW_BYTES or more."""
    taps_needed = POINTWISE_MIN_ROW_BYTES // ROW_BYTES_PER_TAP
    rng = np.random.default_rng(1)
    for co, expected in ((256, Format.SPARSE), (2048, Format.DELTA)):  # both past DOT_MAX_WEIGHTS
        wshape, shape = ((co, 32, 5, 5), (1, 32, 5, 5)) if op == "conv2d" else ((co, 800), (1, 800))
        layer = pc.make_layer(rng, op, "ternary", wshape, sparsity=0.9)
        nonzeros = int(np.count_nonzero(layer.codes))
        assert (nonzeros >= taps_needed) == (expected == Format.DELTA)  # the two cases straddle it
        assert format_rule.default_ternary(layer, shape) == expected


@pytest.mark.parametrize("op", ["conv2d", "dense"])
def test_one_position_layers_with_short_lists_run_the_dot_form(op):
    """A one-position layer of at most DOT_MAX_TAPS_PER_CHANNEL non-zero taps a channel (at most
    DOT_MAX_WEIGHTS weights, at least DOT_MIN_CHANNELS channels) multiplies every weight; longer
    lists, more weights or fewer channels keep rows or lists. A conv runs it only where its kernel covers its input: a padded conv with one output
    position reads padding, which the dot form does not hold."""
    rng = np.random.default_rng(2)
    for co, k, sparsity, expected in ((512, 128, 0.9, Format.DOT),  # ~13 taps a channel: the digits model's conv7
                                      (512, 128, 0.8, Format.SPARSE),  # ~26
                                      (1100, 128, 0.9, Format.SPARSE),  # past DOT_MAX_WEIGHTS
                                      (128, 128, 0.9, Format.SPARSE)):  # fewer than DOT_MIN_CHANNELS
        wshape, shape = ((co, k // 2, 1, 2), (1, k // 2, 1, 2)) if op == "conv2d" else ((co, k), (1, k))
        layer = pc.make_layer(rng, op, "ternary", wshape, sparsity=sparsity)
        per_channel = np.count_nonzero(layer.codes) / co
        short = (per_channel <= format_rule.DOT_MAX_TAPS_PER_CHANNEL and layer.codes.size <= format_rule.DOT_MAX_WEIGHTS
                 and co >= format_rule.DOT_MIN_CHANNELS)
        assert short == (expected == Format.DOT), per_channel
        assert format_rule.default_ternary(layer, shape) == expected
    padded = pc.make_layer(rng, "conv2d", "ternary", (16, 8, 3, 3), pad=1, sparsity=0.95)
    assert format_rule.default_ternary(padded, (1, 8, 1, 1)) == Format.SPARSE


@pytest.mark.parametrize("sparsity, expected", [(0.9, Format.DELTA), (0.95, Format.SPARSE)])
def test_sparser_dense_layers_keep_their_rows(sparsity, expected):
    """A dense layer's walk pays per list, which its adds amortize only above DENSE_MIN_DENSITY
    non-zero weights: AlexNet's fc shape walks in delta at 90% zeros, in rows at 95% (both far past
    POINTWISE_MIN_ROW_BYTES); a one-position conv of the same taps stays in delta."""
    rng = np.random.default_rng(3)
    dense = pc.make_layer(rng, "dense", "ternary", (1024, 4096), sparsity=sparsity)
    assert ROW_BYTES_PER_TAP * np.count_nonzero(dense.codes) > POINTWISE_MIN_ROW_BYTES
    assert (np.count_nonzero(dense.codes) < format_rule.DENSE_MIN_DENSITY * dense.codes.size) == (expected == Format.SPARSE)
    assert format_rule.default_ternary(dense, (1, 4096)) == expected
    conv = pc.make_layer(rng, "conv2d", "ternary", (1024, 256, 4, 4), sparsity=sparsity)
    assert format_rule.default_ternary(conv, (1, 256, 4, 4)) == Format.DELTA


def test_the_rule_is_the_default_and_only_the_default():
    layer, tiny, big = _conv(16, 16, 3, 1), (1, 16, 2, 2), (1, 16, 32, 32)
    assert choose_format(layer, tiny, LayerChoices(), {}) == (Format.SPARSE, FormatSource.DEFAULT)
    assert choose_format(layer, big, LayerChoices(), {}) == (Format.DELTA, FormatSource.DEFAULT)
    # a named default, a forced format and a measured choice each override it
    assert choose_format(layer, big, LayerChoices(default_ternary="sparse"), {}) == (Format.SPARSE, FormatSource.DEFAULT)
    assert choose_format(layer, big, LayerChoices({layer.name: "packed"}), {}) == ("packed", FormatSource.FORCED)
    assert choose_format(layer, tiny, LayerChoices(), {layer_key(layer): "delta"}) == ("delta", FormatSource.MEASURED)
    # a default the layer cannot run exactly falls back to the index rows
    assert choose_format(layer, big, LayerChoices(default_ternary="int8"), {}) == (Format.SPARSE, FormatSource.DEFAULT)


@pytest.mark.parametrize("sparsity, cls, expected", [
    (0.9, "x86-avx512-vnni", Format.PACKED),  # AVX-512: a word of bits expands in two instructions
    (0.9, "x86-avx512", Format.PACKED),
    (0.9, "x86-avx2", Format.DOT),  # AVX2: 4 a 32 weights, slower than the rows; byte planes faster
    (0.97, "x86-avx2", Format.SPARSE),  # under DOT_NARROW_MIN_DENSITY: the rows
    (0.9, "aarch64-dotprod", Format.SPARSE),  # NEON: 5 a 16 weights, slower than the rows
    (0.9, None, Format.SPARSE),  # the class-free rule (compression_table)
    (0.98, "x86-avx512-vnni", Format.SPARSE),  # planes over 1.5x the rows' bytes
])
def test_small_dense_layers_run_their_bit_planes_through_the_dot_product(sparsity, cls, expected):
    """The MLP's 512x512 layer: its rows would be under POINTWISE_MIN_ROW_BYTES, so on a class with
    mask registers its bit-planes (2 bits a weight, about the rows' bytes) take the dot product; on
    AVX2 its byte planes (format_rule._planes_pay), at 5% non-zero weights or more."""
    from tvm_deepchip import isa

    dense = pc.make_layer(np.random.default_rng(5), "dense", "ternary", (512, 512), sparsity=sparsity)
    assert ROW_BYTES_PER_TAP * np.count_nonzero(dense.codes) < POINTWISE_MIN_ROW_BYTES
    assert format_rule.default_ternary(dense, (1, 512), None if cls is None else isa.get(cls)) == expected
    if cls is not None:  # the planner passes its class
        assert choose_format(dense, (1, 512), LayerChoices(), {}, isa.get(cls))[0] == expected


@pytest.mark.parametrize("cls, small_map, covering", [
    ("x86-avx512-vnni", Format.PACKED, Format.PACKED),  # packed_windows: bit_dot over 4 / 1 windows
    ("x86-avx2", Format.SPARSE, Format.DOT),  # rows on the 2x2 map; many short lists: the dot form
])
def test_convs_of_few_positions_run_their_windows_where_bits_expand_cheaply(cls, small_map, covering):
    """The bundled digits model's shapes: a 3x3 conv on a 2x2 map (4 positions) and its 128 -> 512
    1x1 conv on a 1x1 map (the kernel covers the input)."""
    from tvm_deepchip import isa

    rng = np.random.default_rng(7)
    conv = pc.make_layer(rng, "conv2d", "ternary", (128, 128, 3, 3), pad=1)
    point = pc.make_layer(rng, "conv2d", "ternary", (512, 128, 1, 1))
    assert format_rule.default_ternary(conv, (1, 128, 2, 2), isa.get(cls)) == small_map
    assert format_rule.default_ternary(point, (1, 128, 1, 1), isa.get(cls)) == covering
    assert format_rule.default_ternary(conv, (1, 128, 3, 3), isa.get(cls)) == Format.SPARSE  # 9 positions: rows
