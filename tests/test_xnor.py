"""The XNOR primitives (xnor_conv2d, xnor_dense): bit-exact against their numpy references over
fuzzed shapes on every ISA class (aarch64 on the RPC device), the references against the float
semantics of the layer, and each build's popcount the one its ISA has."""
from __future__ import annotations

import numpy as np
import pytest
import tvm

import isa_devices
import primitive_cases as pc
from tvm_deepchip import isa, primitives, targets
from tvm_deepchip.layer import BINARY, OutBinary, OutQuant, QuantLayer, float_semantics
from tvm_deepchip.primitives import binary_bits, roles
from tvm_deepchip.primitives.binary_bits import BitsEpilogue, thresholds
from tvm_deepchip.schedules import tagged_block

# the vector popcount each class's build must hold (LLVM's lowering of ctpop per ISA: VPOPCNTD, or
# VPOPCNTW for xnor_rows' 16-bit words); the suite's own x86 class builds for this CPU (`x86`
# preset), whose popcount depends on the CPU: not checked
POPCOUNT = {"x86-avx2": "vpshufb", "x86-avx512": "vpshufb", "x86-avx512-vnni": "vpopcnt", "aarch64-neon": "cnt",
            "aarch64-dotprod": "cnt"}

CONV_CASES = [  # (Co, C, k, stride, pad, H, W, out)
    (40, 37, 3, 1, 1, 9, 7, "bits"),
    (33, 64, 3, 2, 1, 11, 10, "bits"),
    (16, 5, 5, 1, 2, 8, 8, "uint8"),
    (70, 96, 1, 1, 0, 5, 6, "int8"),
    (10, 33, 3, 1, 0, 6, 6, None),  # float output (logits)
    (64, 256, 3, 1, 1, 8, 8, "bits"),
    # xnor_rows: few output channels, positions in the vector lanes
    (16, 16, 3, 1, 1, 5, 32, "bits"),  # 16 input channels: uint16 words, int16 counts
    (13, 7, 5, 1, 2, 3, 32, "uint8"),  # kernel 5, padding 2, codes out
    (10, 40, 3, 1, 0, 4, 18, "int8"),  # 40 input channels: uint32 words, no padding
    (32, 32, 3, 1, 1, 3, 16, "bits"),  # 32 channels: blocks of accumulators, one full word out
]
DENSE_CASES = [  # (N, K, Co, out)
    (1, 37, 10, "bits"),
    (2, 300, 33, "uint8"),
    (1, 1024, 128, "bits"),
    (3, 64, 7, None),
]
ARM_CONV_CASES = [CONV_CASES[0], CONV_CASES[2], CONV_CASES[4], CONV_CASES[6]]
ARM_DENSE_CASES = [DENSE_CASES[0], DENSE_CASES[1]]


def binary_layer(rng, op, wshape, *, stride=1, pad=0, out="bits") -> QuantLayer:
    co = wshape[0]
    layer = QuantLayer(name=f"{op}_xnor", op=op, weight_kind="binary",
                       codes=rng.choice(np.array([-1, 1], np.int8), size=wshape),
                       bias=rng.normal(0, 2, co).astype(np.float32), in_scale=1.0, in_zero_point=0, in_dtype=BINARY,
                       w_scale=rng.uniform(0.1, 1.0, co).astype(np.float32), strides=(stride, stride), padding=(pad,) * 4)
    k = int(np.prod(wshape[1:]))
    spread = 0.5 * np.sqrt(k)  # the typical |a * acc|
    if out == "bits":
        layer.out = OutBinary(rng.normal(0, spread / 2, co).astype(np.float32))
        layer.act_lo, layer.act_hi = -spread, spread  # a Hardtanh-like clip, as BNNs use
    elif out is not None:
        layer.out = OutQuant(float(spread / 64), 3 if out == "uint8" else 0, out)
        layer.act_lo = 0.0 if out == "uint8" else -np.inf
    return layer


def packed_input(signs: np.ndarray, op: str) -> np.ndarray:
    """+-1 [N, C, H, W] (conv) or [N, K] (dense) -> the kernel's bit-packed input."""
    return binary_bits.np_pack((signs.transpose(0, 2, 3, 1) if op == "conv2d" else signs) > 0)


def check(layer, in_shape, cls, signs=None, knobs=None, seed=0):
    rng = np.random.default_rng(seed)
    lowered, lib = pc.build(layer, in_shape, "xnor", knobs, seed, cls=cls, tgt=targets.tvm_target(isa_devices.preset(cls)))
    isa_devices.check_assembly(cls, lib, lowered.primitive)
    if cls.name != isa_devices.suite_x86_class().name:
        assert POPCOUNT[cls.name] in lib.inspect_source("asm"), f"{cls.name}: no {POPCOUNT[cls.name]} popcount"
    signs = rng.choice(np.array([-1, 1], np.int8), size=in_shape) if signs is None else signs
    qx = packed_input(signs, layer.op)
    assert lowered.in_shape == qx.shape and lowered.in_dtype == "uint32"
    ref = lowered.reference(qx)
    semantics = float_semantics(layer, signs)
    if isinstance(layer.out, OutBinary):  # thresholds in exact arithmetic: the same bits as float64
        assert np.array_equal(ref, packed_input(semantics, layer.op))
    elif layer.out is not None:
        assert np.abs(ref.astype(np.int64) - semantics).max() <= 1
    else:
        np.testing.assert_allclose(ref, semantics, rtol=1e-5, atol=1e-5 * np.abs(semantics).max())
    outs = isa_devices.run(cls, lowered, lib, [qx])
    if outs is not None:
        assert outs[0].dtype == ref.dtype
        np.testing.assert_array_equal(outs[0], ref)
    return ref


@pytest.mark.parametrize("cls, case", pc.per_class(CONV_CASES, ARM_CONV_CASES))
def test_conv2d_bit_exact(cls, case):
    co, c, k, s, p, h, w, out = case
    layer = binary_layer(pc._seeded(case), "conv2d", (co, c, k, k), stride=s, pad=p, out=out)
    check(layer, (1, c, h, w), cls)


@pytest.mark.parametrize("cls, case", pc.per_class(DENSE_CASES, ARM_DENSE_CASES))
def test_dense_bit_exact(cls, case):
    n, k, co, out = case
    check(binary_layer(pc._seeded(case), "dense", (co, k), out=out), (n, k), cls)


@pytest.mark.parametrize("cls", pc.all_classes())
@pytest.mark.parametrize("value", [1, -1])
def test_constant_inputs_and_batch(cls, value):
    """All +1 or all -1 inputs (the extremes of acc: +-K inside, fewer taps at the border)."""
    layer = binary_layer(np.random.default_rng(3), "conv2d", (24, 40, 3, 3), pad=1, out="uint8")
    signs = np.full((2, 40, 6, 6), value, np.int8)
    ref = check(layer, signs.shape, cls, signs=signs)
    assert len(np.unique(ref)) > 1, "degenerate: the border and interior taps should differ"


@pytest.mark.parametrize("cls, seed", pc.per_class([0, 1], [0]))
def test_sampled_schedule_bit_exact(cls, seed):
    layer = binary_layer(np.random.default_rng(seed), "conv2d", (64, 48, 3, 3), pad=1)
    check(layer, (1, 48, 10, 10), cls, knobs="sampled", seed=seed)


def test_thresholds_match_the_float_comparison_exactly():
    """acc >= T  <=>  clip(a * acc + b) >= tau, for every acc in range, including ties, a = 0 and
    thresholds outside the clip range."""
    a = np.array([0.5, 0.25, 0.0, 0.0, 1.0, 0.3, 0.1], np.float32)
    b = np.array([0.25, -1.0, 2.0, -2.0, 0.0, 0.1, 0.0], np.float32)
    tau = np.array([1.25, 0.0, 1.0, 1.0, 5.0, -3.0, 0.0], np.float32)
    lo, hi, taps = -2.0, 4.0, 12
    t = thresholds(a, b, tau, lo, hi, taps)
    acc = np.arange(-taps, taps + 1)[:, None]
    y = np.clip(a.astype(np.float64) * acc + b, lo, hi)
    np.testing.assert_array_equal(acc >= t, y >= tau)
    assert t[0] == 2  # 0.5 * 2 + 0.25 == 1.25 exactly: a tie passes
    assert t[4] == taps + 1 and t[5] == -taps  # tau above the clip: never; below it: always


def test_codes_epilogue_bounds_the_accumulators_by_the_taps():
    """An XNOR layer's accumulator is within +-taps (codes +-1): its requantization is the
    one-piece int32 form (the int8 codes' bound, 128x wider, took two pieces), and the numpy
    epilogue of the extreme accumulators stays the float formula's rounding."""
    from tvm_deepchip.primitives import requantize, xnor_conv2d

    rng = np.random.default_rng(41)
    layer = binary_layer(rng, "conv2d", (32, 16, 3, 3), pad=1, out="int8")
    epi = xnor_conv2d.epilogue(layer)
    taps = 16 * 9
    assert epi.split_form() == (1, 0)
    assert max(int(np.max(a)) for a in epi.acc_max) == taps
    acc = np.arange(-taps, taps + 1, dtype=np.int64)[:, None] * np.ones((1, 32), np.int64)
    got = requantize.np_apply(epi, acc, None, channel_axis=1)
    want = np.clip(np.floor(acc * layer.w_scale.astype(np.float64) / layer.out.scale + layer.bias / layer.out.scale
                            + 0.5), -128, 127)  # int8 codes, zero point 0, no activation
    assert np.abs(got.astype(np.int64) - want).max() <= 1


@pytest.mark.parametrize("op, shape", [("conv2d", (1, 40, 6, 6)), ("dense", (2, 100))])
def test_prim_func_roles_and_packed_io(op, shape):
    wshape = (24, 40, 3, 3) if op == "conv2d" else (24, 100)
    for out in ("bits", "uint8"):
        layer = binary_layer(np.random.default_rng(0), op, wshape, pad=1 if op == "conv2d" else 0, out=out)
        lowered = primitives.lower_layer(layer, shape, "xnor")
        func = primitives.prim_func(lowered)
        assert tagged_block(func) == (roles.EPILOGUE_NAME, f"deepchip_xnor_{op}")
        sch = tvm.s_tir.Schedule(func)
        found = [roles.role_of(sch.get(b)) for b in sch.get_child_blocks(sch.get_sblock("root"))]
        assert found.count(roles.ACCUMULATOR) == 1 and (roles.CROP in found) == (out != "bits")
        words_in = binary_bits.words(shape[1])
        assert lowered.in_shape == ((1, 6, 6, words_in) if op == "conv2d" else (2, words_in))
        assert lowered.out_dtype == ("uint32" if out == "bits" else "uint8")
        assert lowered.weight_bytes == binary_bits.words(wshape[1]) * 4 * int(np.prod(wshape[2:])) * 32  # Co 24 -> 32
        assert isinstance(primitives.lookup(op, "xnor").epilogue(layer), BitsEpilogue) == (out == "bits")


def test_other_formats_refuse_binary_layers_and_xnor_refuses_others():
    layer = binary_layer(np.random.default_rng(0), "dense", (8, 40))
    assert primitives.formats_for(layer) == ("xnor",)
    with pytest.raises(Exception, match="needs ternary weights, the layer has binary"):
        primitives.lower_layer(layer, (1, 40), "sparse")
    ternary = pc.make_layer(np.random.default_rng(0), "dense", "ternary", (8, 40))
    with pytest.raises(Exception, match="needs binary weights, the layer has ternary"):
        primitives.lower_layer(ternary, (1, 40), "xnor")
    assert isa.get("x86-avx2").vector_bytes == 32  # the lanes schedules/xnor.py splits channels by


def test_bit_values_are_a_select_that_vectorizes():
    """A bit's value must be a Select: TVM's vectorizer scalarizes an if_then_else whose condition
    is a vector, and LLVM turned the scalar loop into gathers and scatters (4x slower layers)."""
    from tvm import te, tirx

    acc = te.placeholder((3, 40), "int32", name="acc")
    packed = binary_bits.te_pack((3, binary_bits.words(40)), lambda n, c: acc[n, c] >= 0, 40, "bits")
    ops, stack = [], [packed.op]
    while stack:
        op = stack.pop()
        ops.append(op)
        stack.extend(t.op for t in op.input_tensors)
    (bits,) = [op for op in ops if op.name == "bits_bits"]
    assert isinstance(bits.body[0], tirx.Select)


@pytest.mark.parametrize("cls", pc.all_classes())
@pytest.mark.parametrize("op", ["conv2d", "dense"])
def test_channel_blocks_split_over_cores_bit_exact(cls, op, monkeypatch):
    """A layer of one output position splits its channel blocks over the cores (forced on here
    for layers below PARALLEL_MIN_POPCOUNT_STEPS): the same bits and codes, on every class."""
    from tir_loops import loops

    from tvm_deepchip.schedules import xnor as xnor_schedule

    monkeypatch.setattr(xnor_schedule, "PARALLEL_MIN_POPCOUNT_STEPS", 0)
    rng = np.random.default_rng(11)
    if op == "conv2d":  # a 5x5 map to one output, channels over two 64-channel weight blocks
        layer, shape = binary_layer(rng, op, (128, 70, 5, 5), out="bits"), (1, 70, 5, 5)
    else:
        layer, shape = binary_layer(rng, op, (136, 300), out="uint8"), (1, 300)
    lowered = primitives.lower_layer(layer, shape, "xnor", cls)
    func = pc.schedule_func(primitives.prim_func(lowered), targets.tvm_target(isa_devices.preset(cls)))
    assert int(tvm.tirx.ForKind.PARALLEL) in {int(lp.kind) for lp in loops(func.body)}
    check(layer, shape, cls)
    if op == "conv2d":  # a few positions (2x2), too little for the position split: no launch a position
        few = binary_layer(rng, op, (128, 70, 3, 3), out="bits")
        func = pc.schedule_func(primitives.prim_func(primitives.lower_layer(few, (1, 70, 4, 4), "xnor", cls)),
                                targets.tvm_target(isa_devices.preset(cls)))
        assert int(tvm.tirx.ForKind.PARALLEL) not in {int(lp.kind) for lp in loops(func.body)}


@pytest.mark.parametrize("case", CONV_CASES)
def test_rows_form_chosen_for_few_channels(case):
    """Layers of at most 32 output channels, stride 1 along rows and whole vectors of positions
    take xnor_rows (positions in the vector lanes); the others the channel form."""
    from tvm_deepchip.primitives import xnor_conv2d, xnor_rows

    co, c, k, s, p, h, w, out = case
    layer = binary_layer(pc._seeded(case), "conv2d", (co, c, k, k), stride=s, pad=p, out=out)
    lowered = primitives.lower_layer(layer, (1, c, h, w), "xnor")
    rule = tagged_block(primitives.prim_func(lowered))[1]
    rows = co <= xnor_rows.MAX_CHANNELS and s == 1 and (w + 2 * p - k + 1) % xnor_rows.positions_per_vector(c) == 0
    assert rule == (xnor_rows.RULE if rows else xnor_conv2d.RULE)


@pytest.mark.parametrize("cls", pc.all_classes())
@pytest.mark.parametrize("case", CONV_CASES[:6] + CONV_CASES[9:])
def test_words_paired_where_the_class_counts_64_bit_lanes(cls, case):
    """The channel form reads a pixel's words two at a time (uint64 weights, int64 popcounts) on
    the classes that count 64-bit lanes best, where a pixel's words pair up; uint32 words elsewhere
    and in the rows form (each bit-exact: test_conv2d_bit_exact)."""
    from tvm_deepchip.primitives import xnor_conv2d

    co, c, k, s, p, h, w, out = case
    layer = binary_layer(pc._seeded(case), "conv2d", (co, c, k, k), stride=s, pad=p, out=out)
    lowered = primitives.lower_layer(layer, (1, c, h, w), "xnor", cls)
    channel_form = tagged_block(primitives.prim_func(lowered))[1] == xnor_conv2d.RULE
    pairs = cls.popcount_bits == 64 and binary_bits.words(c) % 2 == 0 and channel_form
    assert lowered.consts[0].dtype == (np.uint64 if pairs else np.uint32)


def test_a_pair_holds_its_two_words_bits_in_channel_order():
    single = binary_bits.np_pack(np.random.default_rng(0).integers(0, 2, (3, 4 * binary_bits.WORD)))
    assert np.array_equal(binary_bits.np_unpack(binary_bits.np_pairs(single, axis=1), 128),
                          binary_bits.np_unpack(single, 128))


@pytest.mark.parametrize("cls", pc.all_classes())
@pytest.mark.parametrize("case", DENSE_CASES)
def test_dense_words_paired_where_the_class_counts_64_bit_lanes(cls, case):
    """xnor_dense reads an input's words in pairs as xnor_conv2d does (uint64 weights where the
    class counts 64-bit lanes best and the words pair up; bit-exact: test_dense_bit_exact)."""
    n, k, co, out = case
    layer = binary_layer(pc._seeded(case), "dense", (co, k), out=out)
    lowered = primitives.lower_layer(layer, (n, k), "xnor", cls)
    pairs = cls.popcount_bits == 64 and binary_bits.words(k) % 2 == 0
    assert lowered.consts[0].dtype == (np.uint64 if pairs else np.uint32)


PACK_CASES = [  # conv cases and the values they pack: rows form (one word) and channel form
    (CONV_CASES[6], "uint8"), (CONV_CASES[7], "int8"), (CONV_CASES[9], "uint8"), (CONV_CASES[6], "float32"),
    (CONV_CASES[0], "uint8"),  # 37 channels: a last word of 5
    (CONV_CASES[1], "int8"),  # 64 channels, stride 2: whole words
    (CONV_CASES[3], "float32"),  # 96 channels, 1x1
]


@pytest.mark.parametrize("cls", pc.all_classes())
@pytest.mark.parametrize("case, codes", PACK_CASES, ids=lambda c: c if isinstance(c, str) else pc.item_id(c))
def test_convs_pack_their_own_input_bit_exact(cls, case, codes):
    """xnor_conv2d.compute_binarized: the kernel over 8-bit codes (or floats) and thresholds,
    binarizing and packing them in its copy of its input (the rows form's padded rows, the channel
    form's words), gives the kernel's output over binary_pack's words of the same codes:
    thresholds past the largest code and at the smallest, codes at both ends."""
    from dataclasses import replace

    from tvm_deepchip.primitives import binary_pack

    co, c, k, s, p, h, w, out = case
    rng = np.random.default_rng(co * 31 + c)
    layer = binary_layer(rng, "conv2d", (co, c, k, k), stride=s, pad=p, out=out)
    lowered = primitives.lower_layer(layer, (1, c, h, w), "xnor", cls)
    assert lowered.te_binarized is not None
    if codes == "float32":
        x = rng.normal(0, 1, (1, c, h, w)).astype(np.float32)
        thr = rng.normal(0, 0.5, c).astype(np.float32)
    else:
        info = np.iinfo(codes)
        x = rng.integers(info.min, info.max + 1, (1, c, h, w)).astype(codes)
        x[0, :, 0, :4] = [info.min, info.max, info.min, info.max]
        thr = rng.integers(info.min, info.max + 1, c).astype(np.int32)
        thr[:2] = [info.max + 1, info.min]  # no code passes; every code does
    ref = lowered.reference(binary_pack.np_pack(x, thr))
    fused = replace(lowered, in_shape=x.shape, in_dtype=codes, consts=[thr] + list(lowered.consts),
                    te_func=lambda t, th, *cs: lowered.te_binarized(t, th, *cs))
    lib = pc.build_func(fused, tgt=isa_devices.preset(cls))
    outs = isa_devices.run(cls, fused, lib, [x])
    if outs is not None:
        np.testing.assert_array_equal(outs[0], ref)


@pytest.mark.parametrize("shape, rows_form", [((64, 64, 16, 16), False), ((16, 16, 32, 32), True)])
def test_a_core_packs_the_rows_its_positions_read(shape, rows_form):
    """On two cores each core packs its own copy of the words, inside the parallel loop (the
    channel form's words, the rows form's padded rows)."""
    from dataclasses import replace

    from tir_loops import loops, stores

    co, c, h, w = shape
    layer = binary_layer(np.random.default_rng(5), "conv2d", (co, c, 3, 3), stride=1, pad=1, out="bits")
    lowered = primitives.lower_layer(layer, (1, c, h, w), "xnor")
    fused = replace(lowered, in_shape=(1, c, h, w), consts=[np.zeros(c, np.int32)] + list(lowered.consts),
                    te_func=lambda t, th, *cs: lowered.te_binarized(t, th, *cs))
    func = pc.schedule_func(primitives.prim_func(fused), pc.target())
    parallel = [lp for lp in loops(func.body) if lp.kind == tvm.tirx.ForKind.PARALLEL]
    assert len(parallel) == 1
    name = "xpad_local" if rows_form else "xwords_local"
    assert stores(parallel[0].body, name) > 0 and stores(func.body, name) == stores(parallel[0].body, name)
