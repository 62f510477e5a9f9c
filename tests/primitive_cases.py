"""Shared harness of the primitive tests: random layers, one build per case and ISA class, bit-exact checks.

Every primitive test builds the TE compute with a schedule (our default, or randomly sampled
knobs as the tuner would pick them) for each ISA class (isa.CLASSES) and compares it with the
numpy reference of the same integer arithmetic, bit for bit, wherever the class runs: natively
for the x86 classes this CPU has, on the aarch64 RPC device for the ARM classes (a few
representative cases each); an x86 class this CPU lacks is built and its assembly checked
(tests/isa_devices.py). The float-output epilogue is compared to float32 rounding instead (LLVM
may contract a*b+c into one FMA)."""
from __future__ import annotations

import numpy as np
import tvm

import isa_devices
from tvm_deepchip import isa, primitives, targets
from tvm_deepchip.layer import OutQuant, QuantLayer, float_semantics
from tvm_deepchip.schedules import Sampled, schedule_func, schedule_in

TARGET = None


def target():
    global TARGET
    if TARGET is None:
        TARGET = targets.tvm_target(targets.get_preset("x86"))
    return TARGET


def make_layer(rng, op, kind, wshape, *, stride=1, pad=0, in_dtype="uint8", out="uint8", act="relu",
               sparsity=0.9, per_channel=True, symmetric=False) -> QuantLayer:
    co = wshape[0]
    if kind == "ternary":
        p = [(1 - sparsity) / 2, sparsity, (1 - sparsity) / 2]
        signs = rng.choice(np.array([-1, 0, 1], np.int8), size=wshape, p=p)
        wp = rng.uniform(0.02, 0.3, co if per_channel else 1).astype(np.float32)
        wn = wp.copy() if symmetric else rng.uniform(0.02, 0.3, co if per_channel else 1).astype(np.float32)
        kw = dict(wp=np.broadcast_to(wp, (co,)).copy(), wn=np.broadcast_to(wn, (co,)).copy())
    elif kind == "bwn":  # binary weights {-a, +a}: an int8 layer of codes +-1 (passes/layer_check)
        signs = rng.choice(np.array([-1, 1], np.int8), size=wshape)
        kw = dict(w_scale=rng.uniform(0.02, 0.3, co).astype(np.float32))
    else:
        signs = rng.integers(-127, 128, size=wshape).astype(np.int8)
        kw = dict(w_scale=rng.uniform(1e-3, 1e-2, co).astype(np.float32))
    k = int(np.prod(wshape[1:]))
    layer = QuantLayer(
        name=f"{op}_{kind}", op=op, weight_kind="int8" if kind == "bwn" else kind, codes=signs,
        bias=rng.normal(0, 0.5, co).astype(np.float32),
        in_scale=float(rng.uniform(0.5, 2.0) / 255), in_zero_point=int(rng.integers(0, 20)) if in_dtype == "uint8" else int(rng.integers(-10, 10)),
        in_dtype=in_dtype, strides=(stride, stride), padding=(pad,) * 4, **kw,
    )
    if act == "relu":
        layer.act_lo = 0.0
    elif act == "clip":
        layer.act_lo, layer.act_hi = 0.0, 1.0
    if out is not None:
        # an output scale that spreads the typical output over the 8-bit range
        spread = layer.in_scale * 128 * 0.15 * np.sqrt(k * (1 - sparsity if kind == "ternary" else 1)) * (
            0.3 if kind in ("ternary", "bwn") else 127 * 5e-3)
        layer.out = OutQuant(float(spread / 64), int(rng.integers(0, 10)) if out == "uint8" else 0, out)
    return layer


def random_input(rng, dtype, shape, saturated=False):
    info = np.iinfo(dtype)
    if saturated:
        return np.full(shape, info.max, dtype)
    return rng.integers(info.min, info.max + 1, size=shape).astype(dtype)


def build(layer, in_shape, fmt, knobs=None, seed=0, cls=None, tgt=None):
    """(lowered, built library) of one layer in `fmt` for ISA class `cls` (lower_layer's default),
    scheduled for x86 (or `tgt`)."""
    tgt = tgt or target()
    lowered = primitives.lower_layer(layer, in_shape, fmt, cls)
    func = primitives.prim_func(lowered)
    if knobs == "sampled":
        func = _sampled(func, seed, tgt)
    else:
        func = schedule_func(func, tgt)
    return lowered, tvm.tirx.build(tvm.IRModule({"main": func}), target=tgt)


def build_func(lowered, tgt=None):
    """The built library of a lowered layer (or a variant of one: its te_func and in_shape),
    scheduled for x86 (or target preset `tgt`)."""
    tgt = targets.tvm_target(tgt) if tgt is not None else target()
    func = schedule_func(primitives.prim_func(lowered), tgt)
    return tvm.tirx.build(tvm.IRModule({"main": func}), target=tgt)


def _sampled(func, seed, tgt):
    """A random point of the primitive's tuning space, as the tuner samples it (under the target)."""
    sch = tvm.s_tir.Schedule(func, seed=seed + 1)
    return schedule_in(sch, tgt, Sampled()).mod["main"]


def split_over_cores(layer, in_shape, fmt, class_name: str) -> bool:
    """Whether the default schedule of `layer` for ISA class `class_name` runs it on two cores."""
    from tir_loops import runs_on_cores

    lowered = primitives.lower_layer(layer, in_shape, fmt, isa.get(class_name))
    return runs_on_cores(schedule_func(primitives.prim_func(lowered), targets.tvm_target(targets.get_preset(class_name))))


def run(lowered, lib, qx):
    dev = tvm.cpu()
    args = [tvm.runtime.tensor(qx, dev)] + [tvm.runtime.tensor(c, dev) for c in lowered.consts]
    args.append(tvm.runtime.empty(lowered.out_shape, lowered.out_dtype, dev))
    lib["main"](*args)
    return args[-1].numpy()


def check(layer, in_shape, fmt, rng, knobs=None, seed=0, saturated=False, cls=None, wide=False):
    """Kernel == reference (bit-exact for 8-bit outputs); reference == float semantics within
    one quantization step (fixed-point vs exact rounding at near-ties). Built for the ISA class
    `cls` (default: the suite's x86 class); returns the kernel's output, or None where the class
    cannot run here (then its assembly was checked: isa_devices.check_assembly)."""
    cls = cls or isa_devices.suite_x86_class()
    lowered, lib = build(layer, in_shape, fmt, knobs, seed, cls=cls, tgt=targets.tvm_target(isa_devices.preset(cls)))
    isa_devices.check_assembly(cls, lib, lowered.primitive, wide)
    qx = random_input(rng, layer.in_dtype, in_shape, saturated)
    ref = lowered.reference(qx)
    assert ref.shape == lowered.out_shape
    if layer.out is not None:
        exact = float_semantics(layer, qx).astype(np.int64)
        diff = np.abs(ref.astype(np.int64) - exact)
        assert diff.max() <= 1 and diff.mean() < 0.01, (diff.max(), diff.mean())
        assert len(np.unique(ref)) > 1 or saturated, "degenerate test: constant output"
    else:
        np.testing.assert_allclose(ref, float_semantics(layer, qx), rtol=1e-4, atol=1e-4 * np.abs(ref).max())
    outs = isa_devices.run(cls, lowered, lib, [qx])
    if outs is None:
        return None
    got = outs[0]
    assert got.shape == ref.shape and got.dtype == ref.dtype
    if layer.out is not None:
        np.testing.assert_array_equal(got, ref)
    else:
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())
    return got


# -- the shared suites: each primitive's test file instantiates one ----------------------------
CONV_CASES = [  # (Co, Ci, k, stride, pad, H, W, in_dtype, out, act)
    (8, 5, 3, 1, 1, 9, 7, "uint8", "uint8", "relu"),
    (13, 7, 3, 2, 1, 11, 10, "uint8", "uint8", "clip"),
    (16, 3, 5, 1, 2, 12, 12, "int8", "int8", None),
    (9, 4, 1, 1, 0, 7, 13, "uint8", "uint8", "relu"),
    (6, 3, 11, 4, 2, 27, 27, "uint8", "uint8", "relu"),
    (64, 64, 3, 1, 1, 18, 18, "uint8", "uint8", "clip"),
    (10, 33, 3, 1, 0, 6, 6, "uint8", None, "relu"),  # float output (logits)
    (128, 128, 5, 1, 0, 5, 5, "uint8", "uint8", "relu"),  # K = 3200: int32 accumulator
    (12, 8, 1, 2, 0, 11, 10, "uint8", "int8", None),  # 1x1 stride 2 (a ResNet shortcut): conv_layout's step form
    (10, 1, 5, 1, 1, 13, 12, "uint8", "uint8", "relu"),  # one input channel: int8 steps over kernel columns
    (20, 7, 3, 1, 0, 3, 3, "int8", "int8", None),  # the kernel covers the input: one output position
]
DENSE_CASES = [  # (N, K, Co, in_dtype, out, act)
    (1, 37, 10, "uint8", "uint8", "relu"),
    (2, 144, 20, "uint8", "uint8", "clip"),
    (1, 515, 33, "int8", "int8", None),
    (3, 64, 7, "uint8", None, None),  # float output (logits)
    (1, 4096, 256, "uint8", "uint8", "relu"),
]


# the aarch64 classes run on the (emulated) RPC device: a few representative cases each
ARM_CONV_CASES = [CONV_CASES[0], CONV_CASES[2], CONV_CASES[6], CONV_CASES[10]]  # relu/uint8, int8 in and out, float out, one position
ARM_DENSE_CASES = [DENSE_CASES[0], DENSE_CASES[2], DENSE_CASES[3]]
WIDE_CONV_CASE = CONV_CASES[5]  # 64 channels over 18x18: fills 512-bit registers on AVX-512


def _seeded(case):
    import zlib

    return np.random.default_rng(zlib.crc32(repr(case).encode()))


def per_class(x86_items, arm_items):
    """pytest params: every x86 class with every item, every aarch64 class with `arm_items`."""
    import pytest

    def param(cls, item):
        return pytest.param(isa.CLASSES[cls], item, id=f"{cls}-{item_id(item)}")

    return ([param(c, it) for c in isa.X86_CLASSES for it in x86_items]
            + [param(c, it) for c in isa.ARM_CLASSES for it in arm_items])


def all_classes():
    import pytest

    return [pytest.param(c, id=name) for name, c in isa.CLASSES.items()]


def item_id(item):
    if isinstance(item, tuple) and len(item) == 10:  # a conv case
        return "x".join(map(str, item[:7])) + f"-{item[7]}-{item[8]}"
    if isinstance(item, tuple) and len(item) == 6:  # a dense case
        return "x".join(map(str, item[:3])) + f"-{item[3]}-{item[4]}"
    return str(item)


def conv_suite(fmt: str, kind: str):
    """(test_bit_exact, test_saturated_input_and_batch, test_tuned_schedule_bit_exact) for one
    conv2d primitive: fuzzed shapes (strides 1/2/4, padding, kernels 1/3/5/11, odd channels),
    each for every ISA class (the aarch64 ones on ARM_CONV_CASES)."""
    import pytest

    @pytest.mark.parametrize("cls, case", per_class(CONV_CASES, ARM_CONV_CASES))
    def test_bit_exact(cls, case):
        co, ci, k, s, p, h, w, dt, out, act = case
        rng = _seeded(case)
        layer = make_layer(rng, "conv2d", kind, (co, ci, k, k), stride=s, pad=p, in_dtype=dt, out=out, act=act)
        check(layer, (1, ci, h, w), fmt, rng, cls=cls, wide=case == WIDE_CONV_CASE)

    @pytest.mark.parametrize("cls", all_classes())
    def test_saturated_input_and_batch(cls):
        rng = np.random.default_rng(1)
        layer = make_layer(rng, "conv2d", kind, (12, 16, 3, 3), pad=1, sparsity=0.5)
        check(layer, (2, 16, 8, 8), fmt, rng, saturated=True, cls=cls)

    @pytest.mark.parametrize("cls, seed", per_class([0, 1, 2], [0]))
    def test_tuned_schedule_bit_exact(cls, seed):
        rng = np.random.default_rng(seed)
        layer = make_layer(rng, "conv2d", kind, (32, 24, 3, 3), pad=1)
        check(layer, (1, 24, 14, 14), fmt, rng, knobs="sampled", seed=seed, cls=cls)

    return test_bit_exact, test_saturated_input_and_batch, test_tuned_schedule_bit_exact


def dense_suite(fmt: str, kind: str):
    """The same three tests for one dense primitive (K not a multiple of any vector width)."""
    import pytest

    @pytest.mark.parametrize("cls, case", per_class(DENSE_CASES, ARM_DENSE_CASES))
    def test_bit_exact(cls, case):
        n, k, co, dt, out, act = case
        rng = _seeded(case)
        layer = make_layer(rng, "dense", kind, (co, k), in_dtype=dt, out=out, act=act)
        check(layer, (n, k), fmt, rng, cls=cls)

    @pytest.mark.parametrize("cls", all_classes())
    def test_saturated_input(cls):
        rng = np.random.default_rng(1)
        layer = make_layer(rng, "dense", kind, (24, 300), sparsity=0.3)
        check(layer, (1, 300), fmt, rng, saturated=True, cls=cls)

    @pytest.mark.parametrize("cls, seed", per_class([0, 1], [0]))
    def test_tuned_schedule_bit_exact(cls, seed):
        rng = np.random.default_rng(seed)
        layer = make_layer(rng, "dense", kind, (40, 256))
        check(layer, (1, 256), fmt, rng, knobs="sampled", seed=seed, cls=cls)

    return test_bit_exact, test_saturated_input, test_tuned_schedule_bit_exact


def assert_same_layout(x, mine, ref, rng, operand: str) -> None:
    """Two TE layouts of the input placeholder x (a kernel's copy and te_flat's reference) hold
    the same codes: random codes and the type's largest everywhere, built unscheduled; and
    MetaSchedule can weigh the copy (estimate_tir_flops, which has no case for TIR's vector
    constants: tuning a model whose layout held one failed)."""
    from tvm import s_tir, te

    assert s_tir.analysis.estimate_tir_flops(tvm.IRModule({"main": te.create_prim_func([x, mine])})) >= 0

    lib = tvm.tirx.build(s_tir.Schedule(te.create_prim_func([x, mine, ref])).mod, target=tvm.target.Target({"kind": "llvm"}))
    dev, info, shape = tvm.cpu(), np.iinfo(str(x.dtype)), [int(s) for s in x.shape]
    for qx in (rng.integers(info.min, info.max + 1, shape), np.full(shape, info.max)):
        outs = [tvm.runtime.empty([int(s) for s in t.shape], operand, dev) for t in (mine, ref)]
        lib["main"](tvm.runtime.tensor(qx.astype(str(x.dtype)), dev), *outs)
        a, b = (o.numpy() for o in outs)
        assert a.shape == b.shape and len(np.unique(b)) > 1
        np.testing.assert_array_equal(a, b)
