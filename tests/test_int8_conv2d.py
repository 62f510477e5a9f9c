"""int8_conv2d: bit-exact against its numpy reference over fuzzed shapes, for every ISA class
(tests/primitive_cases.py). The dot-product instruction of each class (vpdpbusd on
x86-avx512-vnni, sdot on aarch64-dotprod) is checked in every build's assembly there
(tests/isa_devices.check_assembly), on any host."""
from dataclasses import replace

import numpy as np
import pytest
import isa_devices
from primitive_cases import all_classes, build, conv_suite, make_layer, random_input, run

from tvm_deepchip import isa, targets

test_bit_exact, test_saturated_input_and_batch, test_tuned_schedule_bit_exact = conv_suite("int8", "int8")


@pytest.mark.parametrize("cls", all_classes())
def test_int8_input_extremes_through_the_operand_shift(cls):
    """-128 and 127 everywhere, padding included, match the reference exactly: on x86 int8 codes
    are fed as q + 128 (VNNI multiplies unsigned by signed bytes), on ARM as they are (sdot)."""
    rng = np.random.default_rng(3)
    layer = make_layer(rng, "conv2d", "int8", (16, 5, 3, 3), pad=1, in_dtype="int8", out="int8", act=None)
    lowered, lib = build(layer, (1, 5, 9, 9), "int8", cls=cls, tgt=targets.tvm_target(isa_devices.preset(cls)))
    isa_devices.check_assembly(cls, lib, lowered.primitive)
    inputs = [np.full((1, 5, 9, 9), value, np.int8) for value in (-128, 127)]
    refs = [lowered.reference(qx) for qx in inputs]
    assert all(len(np.unique(ref)) > 1 for ref in refs)  # the padded border differs from the inside
    outs = isa_devices.run(cls, lowered, lib, inputs)
    for got, ref in zip(outs or [], refs):
        np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("in_dtype", ["uint8", "int8"])
def test_signed_operand_form_is_bit_exact(in_dtype):
    """The aarch64 preset feeds the dot products signed codes (sdot): uint8 inputs arrive as
    q - 128. Same arithmetic on x86 (plain vector multiply-adds), checked bit for bit."""
    rng = np.random.default_rng(5)
    layer = make_layer(rng, "conv2d", "int8", (20, 6, 3, 3), stride=2, pad=1, in_dtype=in_dtype,
                       out=in_dtype, act="relu" if in_dtype == "uint8" else None)
    lowered, lib = build(layer, (1, 6, 15, 15), "int8", cls=isa.get("aarch64-dotprod"))
    for qx in (random_input(rng, in_dtype, (1, 6, 15, 15)), random_input(rng, in_dtype, (1, 6, 15, 15), saturated=True)):
        np.testing.assert_array_equal(run(lowered, lib, qx), lowered.reference(qx))


def test_assembly_check_catches_a_build_of_the_wrong_class():
    """The assembly checks that stand in for running an x86 class this CPU lacks have teeth: an
    AVX-512 VNNI build is refused as an AVX2 user's kernel, an AVX2 build as a VNNI one."""
    from tvm_deepchip import isa

    rng = np.random.default_rng(0)
    layer = make_layer(rng, "conv2d", "int8", (32, 8, 3, 3), pad=1)
    avx2, vnni = isa.CLASSES["x86-avx2"], isa.CLASSES["x86-avx512-vnni"]
    for built, claimed, msg in ((vnni, avx2, "illegal on that CPU"), (avx2, vnni, "does not use 'vpdpbusd'")):
        lowered, lib = build(layer, (1, 8, 12, 12), "int8", tgt=targets.tvm_target(targets.get_preset(built.name)))
        isa_devices.check_assembly(built, lib, lowered.primitive, wide=True)
        with pytest.raises(AssertionError, match=msg):
            isa_devices.check_assembly(claimed, lib, lowered.primitive)


def test_schedule_steps_over_the_positions_the_primitive_pads_to():
    """The dot-product schedule splits the flat positions into steps of the length the primitive
    pads them to (int8_conv2d.positions): the two constants are one number."""
    from tvm_deepchip.primitives import int8_conv2d
    from tvm_deepchip.schedules import dot_product

    assert dot_product.POSITIONS_PER_STEP == int8_conv2d.POSITIONS_PER_STEP


@pytest.mark.parametrize("cls", all_classes())
def test_one_input_channel_folds_kernel_columns(cls):
    """A grayscale first layer (LeNet's 5x5 over 28x28; one padded and vertically strided): its
    5 kernel columns are the folded channels (primitives/column_fold), 2 steps of 4 codes (3 of
    2 int16 codes), not one channel and padding; bit-exact on every class, saturated codes and
    the padded border included, and the same arithmetic in the signed-operand (ARM) form on x86."""
    from tvm_deepchip.primitives import column_fold, conv_layout, int8_weights

    rng = np.random.default_rng(11)
    group = int8_weights.group_of(cls.int8_operand)
    for shape, strides, pad in (((1, 1, 28, 28), (1, 1), 0), ((1, 1, 13, 12), (2, 1), 2)):
        layer = replace(make_layer(rng, "conv2d", "int8", (16, 1, 5, 5), pad=pad), strides=strides)
        lowered, lib = build(layer, shape, "int8", cls=cls, tgt=targets.tvm_target(isa_devices.preset(cls)))
        isa_devices.check_assembly(cls, lib, lowered.primitive)
        assert column_fold.folded(conv_layout.geometry(layer, shape), group) is not None
        assert lowered.consts[0].shape[1] == -(-5 // group) and lowered.consts[0].shape[-2:] == (1, group)
        inputs = [random_input(rng, "uint8", shape), random_input(rng, "uint8", shape, saturated=True)]
        refs = [lowered.reference(qx) for qx in inputs]
        if not cls.is_x86:  # the ARM form's arithmetic, run here (before the device, which may skip)
            arm, arm_lib = build(layer, shape, "int8", cls=cls)
            np.testing.assert_array_equal(run(arm, arm_lib, inputs[0]), refs[0])
        outs = isa_devices.run(cls, lowered, lib, inputs)
        for got, ref in zip(outs or [], refs):
            np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("cls", all_classes())
def test_conv_over_its_whole_input_is_a_dense_product(cls):
    """SVHN ConvNet's conv7 form (a 5x5 kernel over a 5x5 input, no padding: one output
    position) runs as int8_dense's product over the flattened image: its weights in the dense
    blocks of 16 output channels, bit-exact on every class, batch 2 and saturated inputs too."""
    from primitive_cases import check

    from tvm_deepchip import primitives
    from tvm_deepchip.primitives import conv_layout, int8_conv2d, int8_dense

    rng = np.random.default_rng(11)
    layer = make_layer(rng, "conv2d", "int8", (40, 24, 5, 5), in_dtype="uint8", out="uint8", act="relu")
    assert int8_conv2d.covers_input(conv_layout.geometry(layer, (2, 24, 5, 5)))
    lowered = primitives.lower_layer(layer, (2, 24, 5, 5), "int8", cls)
    blocks = lowered.consts[0]
    assert blocks.ndim == 4 and blocks.shape[0] * blocks.shape[2] == 48 and blocks.shape[2] == int8_dense.CHANNELS_PER_STEP
    assert lowered.out_shape == (2, 40, 1, 1)
    check(layer, (2, 24, 5, 5), "int8", rng, cls=cls)
    check(layer, (2, 24, 5, 5), "int8", rng, cls=cls, saturated=True)


def test_only_a_kernel_over_the_whole_unpadded_input_is_a_dense_product():
    """Padding, a smaller kernel, or a strided read keep the flat-position form."""
    from tvm_deepchip.primitives import conv_layout, int8_conv2d

    rng = np.random.default_rng(12)
    for k, pad, hw, dense in ((5, 0, 5, True), (3, 0, 3, True), (3, 1, 3, False), (3, 0, 5, False), (1, 0, 1, True)):
        layer = make_layer(rng, "conv2d", "int8", (8, 4, k, k), pad=pad)
        assert int8_conv2d.covers_input(conv_layout.geometry(layer, (1, 4, hw, hw))) is dense, (k, pad, hw)


def test_positions_round_up_to_whole_register_tiles():
    """An 18x18 map with padding 1 has 360 flat positions: 23 steps of 16, a prime count that left
    the schedule one vector of positions a tile; rounded up to 24 (within te_flat's zero tail),
    and the AVX-512 tile takes several vectors. Where rounding costs over a tenth, it stays."""
    from tvm_deepchip.primitives import conv_layout, int8_conv2d
    from tvm_deepchip.schedules import dot_product

    geo = conv_layout.ConvGeometry.of((1, 64, 18, 18), (64, 64, 3, 3), (1, 1), (1, 1, 1, 1))
    p = int8_conv2d.positions(geo)
    assert p == 24 * 16 and p <= geo.out_flat and p >= geo.ho * geo.wq
    small = conv_layout.ConvGeometry.of((1, 8, 5, 5), (8, 8, 3, 3), (1, 1), (0, 0, 0, 0))  # 15 flat: one step
    assert int8_conv2d.positions(small) == 16
    cands_c, cands_p = [8, 4, 2], [2, 4, 1]
    avx512 = isa.get("x86-avx512-vnni")
    assert dot_product._default_tile(cands_c, cands_p, avx512) == (4, 4)  # no 12: half the 32 zmm, fewest loads
    assert dot_product._default_tile([8, 6, 4, 3, 2], cands_p, avx512) == (3, 4)  # 12 of 32: 3/8
    assert dot_product._default_tile([8, 4, 2], [1], avx512) == (8, 1)
    avx2 = isa.get("x86-avx2")  # half of 16 ymm, 2 a vector of 16 int32: positions first
    assert dot_product._default_tile(cands_c + [1], cands_p, avx2, taps=15) == (1, 4)
    # AlexNet's conv1: 204 steps of 64 bytes a vector of positions (13 KB): one vector, 4 channels
    assert dot_product._default_tile(cands_c + [1], [2, 1], avx2, taps=204) == (4, 1)
    assert dot_product._default_tile([6, 3, 2, 1], [3, 1], avx2, taps=40) == (1, 3)  # 3 x 40 x 64 B: 7.7 KB


@pytest.mark.parametrize("name", ["x86-avx512-vnni", "x86-avx2"])
def test_exact_positions_need_no_crop(name):
    """SVHN ConvNet's conv1 (3 -> 48 channels, 5x5 over 40x40, kernel columns folded: Wq = Wo =
    36): 1296 flat positions are 81 steps, an odd count taken in tiles of 3 vectors (it was padded
    to 84), so the flat positions are exactly the output's and the epilogue writes the output:
    no crop copies it. A padded layer (Wq > Wo) keeps its crop."""
    from primitive_cases import schedule_func
    from tir_loops import stored

    from tvm_deepchip import primitives
    from tvm_deepchip.primitives import column_fold, conv_layout, int8_conv2d, int8_weights
    from tvm_deepchip.schedules import dot_product

    rng = np.random.default_rng(5)
    cls, tgt = isa.get(name), targets.tvm_target(targets.get_preset(name))
    for w_shape, x_shape, pad, crop in (((48, 3, 5, 5), (1, 3, 40, 40), 0, False), ((16, 16, 3, 3), (1, 16, 9, 9), 1, True)):
        layer = make_layer(rng, "conv2d", "int8", w_shape, pad=pad)
        geo = conv_layout.geometry(layer, x_shape)
        flat = column_fold.folded(geo, int8_weights.group_of(cls.int8_operand)) or geo
        if not crop:
            assert int8_conv2d.positions(flat) == geo.ho * geo.wo == 81 * 16
            assert dot_product._position_tiles(81) == [3, 1]
        func = schedule_func(primitives.prim_func(primitives.lower_layer(layer, x_shape, "int8", cls)), tgt)
        written = stored(func.body)
        assert "crop" in written  # the output, written by the crop or by the epilogue itself
        assert ("epilogue" in written) is crop  # the flat outputs the crop copies from


@pytest.mark.parametrize("cls", all_classes())
def test_few_input_channels_fold_kernel_columns(cls):
    """An RGB first layer (SVHN ConvNet's conv1: 3 channels, 5x5, no padding; a padded one; and
    AlexNet's form, 11x11 strided by 4 across and down, and a padded 5x5 strided by 2) folds its
    kernel columns into channels (primitives/column_fold): the weights hold Ci*KW folded channels
    in groups and one column (strided: one horizontal phase), and the kernel is bit-exact on every
    class, saturated codes, batch 2 and the padded border included."""
    from tvm_deepchip.primitives import column_fold, conv_layout, int8_weights

    rng = np.random.default_rng(21)
    group = int8_weights.group_of(cls.int8_operand)
    for w_shape, x_shape, pad, stride in (((24, 3, 5, 5), (1, 3, 20, 20), 0, 1), ((8, 3, 5, 5), (2, 3, 11, 9), 2, 1),
                                          ((16, 3, 11, 11), (1, 3, 35, 35), 0, 4), ((8, 3, 5, 5), (2, 3, 13, 12), 2, 2)):
        layer = replace(make_layer(rng, "conv2d", "int8", w_shape, pad=pad), strides=(stride, stride))
        geo = conv_layout.geometry(layer, x_shape)
        assert column_fold.folded(geo, group) is not None
        lowered, lib = build(layer, x_shape, "int8", cls=cls, tgt=targets.tvm_target(isa_devices.preset(cls)))
        isa_devices.check_assembly(cls, lib, lowered.primitive)
        wt, k = lowered.consts[0], w_shape[-1]
        # Ci*KW folded channels in groups, one horizontal phase and column, the rows in vertical phases
        assert wt.shape[1] == -(-3 * k // group) and wt.shape[2:] == (stride, 1, -(-k // stride), 1, group)
        inputs = [random_input(rng, "uint8", x_shape), random_input(rng, "uint8", x_shape, saturated=True)]
        refs = [lowered.reference(qx) for qx in inputs]
        outs = isa_devices.run(cls, lowered, lib, inputs)
        for got, ref in zip(outs or [], refs):
            np.testing.assert_array_equal(got, ref)


def test_dot_instructions_decide_the_split_over_cores():
    """The int8 conv runs on two cores by the vector instructions its dot products take: AVX2's
    vpmaddwd covers 16 multiply-adds and needs an add after it, VNNI's vpdpbusd covers 64 and
    accumulates. ResNet-44's first layer (0.44 M MACs) is two cores' work on AVX2 (55 K
    instructions; with VNNI, 7 K, it is too, because its layout copy splits its rows:
    test_layouts_split_by_rows_over_the_cores); a layer a tenth its size still is on AVX2, whose
    class splits from 5 K (dot_product.PARALLEL_MIN_DOT_OPS_BY_CLASS), and not with VNNI; one a
    thirtieth its size is one core's on both."""
    from primitive_cases import split_over_cores
    from tvm_deepchip.schedules import dot_intrinsics
    from tvm_deepchip.schedules.x86 import pmaddubsw, pmaddwd, vnni

    assert dot_intrinsics.ops_per_mac(vnni.NAME) == 1 / 64
    assert dot_intrinsics.ops_per_mac(pmaddwd.NAMES[32]) == 2 / 16
    assert dot_intrinsics.ops_per_mac(pmaddubsw.NAMES[32]) == 3 / 32
    rng = np.random.default_rng(0)
    for (co, ci, hw), parallel in (((16, 3, 32), {"x86-avx2": True, "x86-avx512-vnni": True}),
                                   ((16, 3, 10), {"x86-avx2": True, "x86-avx512-vnni": False}),
                                   ((16, 3, 5), {"x86-avx2": False, "x86-avx512-vnni": False})):
        layer = make_layer(rng, "conv2d", "int8", (co, ci, 3, 3), pad=1)
        for name, expected in parallel.items():
            assert split_over_cores(layer, (1, ci, hw, hw), "int8", name) == expected, (name, co, ci, hw)


@pytest.mark.parametrize("cls", all_classes())
def test_layouts_split_by_rows_over_the_cores(cls):
    """A layout copy of 8 KB or more, of a conv whose dot products take two cores on every class,
    is split by rows over the cores (grouped_layout.splits_rows: the folded RGB 5x5 of SVHN
    ConvNet's conv1 form, a 16 -> 16 3x3 as ResNet-44's, its stride-4 11x11 AlexNet form), and
    its dot products then split their positions: bit-exact on every class, the batch and the
    padded border included; ResNet-44's int8 first layer (0.44 M MACs) is split, the same layout
    for 4 channels (0.11 M, under PARALLEL_MIN_LAYOUT_MACS) is not."""
    from primitive_cases import check, split_over_cores
    from tvm_deepchip.primitives import column_fold, conv_layout, grouped_layout, int8_weights

    rng = np.random.default_rng(17)
    group = int8_weights.group_of(cls.int8_operand)
    dtype = "int16" if group == 2 else cls.int8_operand
    for co, ci, k, stride, pad, shape in ((24, 3, 5, 1, 0, (1, 3, 40, 40)), (16, 16, 3, 1, 1, (2, 16, 20, 20)),
                                          (16, 3, 11, 4, 2, (1, 3, 67, 67))):
        layer = replace(make_layer(rng, "conv2d", "int8", (co, ci, k, k), pad=pad), strides=(stride, stride))
        geo = conv_layout.geometry(layer, shape)
        fold = column_fold.folded(geo, group)
        assert grouped_layout.splits_rows(geo, (fold or geo).grouped(group), group, dtype), (co, ci, k, shape)
        assert split_over_cores(layer, shape, "int8", cls.name)
        check(layer, shape, "int8", rng, cls=cls)
    for w_shape, shape, split in (((16, 3, 3, 3), (1, 3, 32, 32), True), ((4, 3, 3, 3), (1, 3, 32, 32), False)):
        layer = make_layer(rng, "conv2d", "int8", w_shape, pad=w_shape[2] // 2)
        geo = conv_layout.geometry(layer, shape)
        g = (column_fold.folded(geo, group) or geo).grouped(group)
        assert grouped_layout.splits_rows(geo, g, group, dtype) is split, w_shape
