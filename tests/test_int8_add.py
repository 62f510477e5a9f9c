"""int8_add (primitives/int8_add.py) and its rewrite rule (passes/integer_add.py): the quantized
residual add in integers.

- the constants: every partial sum inside int32 at the codes' extremes, the multipliers' error
  within MAX_ERROR, ReLU/Clip as code bounds, refusal where no int32 form is accurate;
- the numpy reference against ONNX's float semantics: at most one code apart, and only where the
  exact value lies within the constants' error of a rounding boundary;
- the kernel (TVM's elementwise default schedule) bit-exact against the reference on every ISA
  class (natively, or on the aarch64 RPC device), saturated codes included;
- the rule before/after on a Relax module, and the cases it must leave to TVM.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import tvm
from tvm import relax, te

import isa_devices
from primitive_cases import all_classes
from rpc_models import relax_module
from tvm_deepchip import targets
from tvm_deepchip.passes import IntegerAdd
from tvm_deepchip.primitives import int8_add
from tvm_deepchip.schedules.tvm_ops import schedule_tvm_op

SHAPE = (1, 16, 12, 12)
# (a, b, y) as (scale, zero point, dtype), act bounds: ResNet-44's form (int8 conv output + uint8
# skip -> uint8 after ReLU), both int8 without activation, and a Clip
CASES = {
    "relu": ((0.031, -3, "int8"), (0.027, 0, "uint8"), (0.045, 0, "uint8"), 0.0, None),
    "none": ((0.011, 5, "int8"), (0.019, -7, "int8"), (0.024, 2, "int8"), None, None),
    "clip": ((0.02, 128, "uint8"), (0.005, 17, "uint8"), (0.01, 9, "uint8"), 0.0, 1.5),
}


def _codes(rng, dtype, shape=SHAPE):
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max + 1, size=shape).astype(dtype)


@pytest.mark.parametrize("name", list(CASES))
def test_constants_fit_int32_and_are_accurate(name):
    a, b, y, lo, hi = CASES[name]
    c = int8_add.fit(a, b, y, lo, hi)
    assert c is not None and c.shift >= 16
    worst = max(abs(q - c.zero_a) * c.mult_a for q in (np.iinfo(a[2]).min, np.iinfo(a[2]).max)) \
        + max(abs(q - c.zero_b) * c.mult_b for q in (np.iinfo(b[2]).min, np.iinfo(b[2]).max)) + (1 << (c.shift - 1))
    assert worst < 2**31
    for scale, mult in ((a[0], c.mult_a), (b[0], c.mult_b)):
        assert abs(mult / 2**c.shift - scale / y[0]) * 255 <= int8_add.MAX_ERROR


def test_activation_bounds_become_code_bounds():
    a, b, y, _, _ = CASES["clip"]
    c = int8_add.fit(a, b, y, 0.0, 1.5)
    assert (c.lo, c.hi) == (9, 9 + 150)  # zero point; 1.5 / 0.01 codes above it
    assert int8_add.fit(a, b, y).lo == 0 and int8_add.fit(a, b, y).hi == 255
    assert int8_add.fit(a, b, y, 0.0, -1.0) is None  # an empty range


def test_scales_too_far_apart_are_refused():
    """A branch scale 2^24 times the output's cannot be multiplied inside int32; one 3000 times
    it leaves so few bits of shift that the multipliers' rounding exceeds MAX_ERROR: both stay
    float. 100 times still fits."""
    assert int8_add.fit((2.0**24, 0, "int8"), (1.0, 0, "int8"), (1.0, 0, "int8")) is None
    assert int8_add.fit((3000.3, 0, "int8"), (0.7, 0, "int8"), (1.0, 0, "int8")) is None
    assert int8_add.fit((100.3, 0, "int8"), (0.7, 0, "int8"), (1.0, 0, "int8")) is not None


@pytest.mark.parametrize("name", list(CASES))
def test_reference_agrees_with_float_semantics_except_near_rounding_boundaries(name):
    a, b, y, lo, hi = CASES[name]
    c = int8_add.fit(a, b, y, lo, hi)
    rng = np.random.default_rng(1)
    qa, qb = _codes(rng, a[2], (200_000,)), _codes(rng, b[2], (200_000,))
    ref = int8_add.reference(qa, qb, c).astype(np.int64)
    exact = int8_add.float_semantics(qa, qb, a, b, y, lo, hi)
    diff = np.abs(ref - exact)
    assert diff.max() <= 1
    value = ((qa.astype(np.float64) - a[1]) * a[0] + (qb.astype(np.float64) - b[1]) * b[0]) / y[0]
    near = np.abs(np.abs(value - np.floor(value)) - 0.5) <= 1e-3
    assert not np.any(diff[~near]), "differs away from a rounding boundary"
    assert len(np.unique(ref)) > 50  # not a degenerate (saturated) case


@dataclass
class _Lowered:
    """What isa_devices.run reads of a kernel: its constant inputs (here the second operand) and
    output."""

    primitive: str
    consts: list
    out_shape: tuple
    out_dtype: str


@pytest.mark.parametrize("cls", all_classes())
@pytest.mark.parametrize("name", list(CASES))
def test_kernel_bit_exact_on_every_isa_class(cls, name):
    a, b, y, lo, hi = CASES[name]
    c = int8_add.fit(a, b, y, lo, hi)
    ta, tb = te.placeholder(SHAPE, a[2], "a"), te.placeholder(SHAPE, b[2], "b")
    func = schedule_tvm_op(te.create_prim_func([ta, tb, int8_add.compute(ta, tb, c)]))
    lib = tvm.tirx.build(tvm.IRModule({"main": func}), target=targets.tvm_target(isa_devices.preset(cls)))
    isa_devices.check_assembly(cls, lib, "int8_add")
    rng = np.random.default_rng(2)
    qb = _codes(rng, b[2])
    inputs = [_codes(rng, a[2]), np.full(SHAPE, np.iinfo(a[2]).max, a[2]), np.full(SHAPE, np.iinfo(a[2]).min, a[2])]
    outs = isa_devices.run(cls, _Lowered("int8_add", [qb], SHAPE, y[2]), lib, inputs)
    if outs is None:
        return  # an x86 class this CPU lacks: assembly checked
    for qa, got in zip(inputs, outs):
        np.testing.assert_array_equal(got, int8_add.reference(qa, qb, c))
    assert len(np.unique(outs[0])) > 10


# -- the rewrite rule --------------------------------------------------------------------------

def _const(value, dtype):
    return relax.const(np.asarray(value, dtype), dtype)


def _residual(bb, xa, xb, case, act=True, scale_a=None):
    a, b, y, lo, hi = case
    sa = _const(a[0] if scale_a is None else scale_a, "float32")
    da = bb.emit(relax.op.dequantize(xa, sa, _const(a[1], a[2]), axis=1))
    db = bb.emit(relax.op.dequantize(xb, _const(b[0], "float32"), _const(b[1], b[2]), axis=1))
    s = bb.emit(relax.op.add(da, db))
    if act:
        s = bb.emit(relax.op.nn.relu(s))
    return relax.op.quantize(s, _const(y[0], "float32"), _const(y[1], y[2]), axis=1, out_dtype=y[2])


def _vars(case):
    return (relax.Var("a", relax.TensorType(SHAPE, case[0][2])), relax.Var("b", relax.TensorType(SHAPE, case[1][2])))


def test_rule_replaces_the_quantized_add_by_one_integer_kernel():
    case = CASES["relu"]
    xa, xb = _vars(case)
    before = relax_module([xa, xb], lambda bb: _residual(bb, xa, xb, case))
    c = int8_add.fit(*case)
    expected = relax_module([xa, xb], lambda bb: bb.emit_te(lambda ta, tb: int8_add.compute(ta, tb, c), xa, xb,
                                                             primfunc_name_hint="deepchip_int8_add"))
    after = IntegerAdd()(before)
    tvm.ir.assert_structural_equal(after, expected)


def test_rule_result_equals_the_reference_through_a_build():
    case = CASES["none"]
    xa, xb = _vars(case)
    mod = IntegerAdd()(relax_module([xa, xb], lambda bb: _residual(bb, xa, xb, case, act=False)))
    assert "deepchip_int8_add" in [gv.name_hint for gv in mod.functions]
    vm = relax.VirtualMachine(tvm.compile(mod, targets.tvm_target(targets.get_preset("x86"))), tvm.cpu())
    rng = np.random.default_rng(3)
    qa, qb = _codes(rng, "int8"), _codes(rng, "int8")
    got = vm["main"](tvm.runtime.tensor(qa), tvm.runtime.tensor(qb)).numpy()
    np.testing.assert_array_equal(got, int8_add.reference(qa, qb, int8_add.fit(*case)))


def test_rule_leaves_per_channel_scales_and_unfit_constants_to_tvm():
    case = CASES["relu"]
    xa, xb = _vars(case)
    for scale_a in (np.full(16, 0.03, np.float32), 2.0**24):
        before = relax_module([xa, xb], lambda bb, s=scale_a: _residual(bb, xa, xb, case, scale_a=s))
        tvm.ir.assert_structural_equal(IntegerAdd()(before), before)


# -- the add fused into the conv kernel it reads -----------------------------------------------

@dataclass
class _FusedLowered:
    """isa_devices.run's view of a fused kernel main(x, *consts, skip, out): the skip codes ride
    as its last constant."""

    primitive: str
    consts: list
    out_shape: tuple
    out_dtype: str


@pytest.mark.parametrize("cls", all_classes())
@pytest.mark.parametrize("fmt", ["delta", "delta-rows", "delta-channels", "sparse", "int8"])
def test_fused_kernel_bit_exact_on_every_isa_class(cls, fmt, monkeypatch):
    """conv (flat layout, its crop inlined into the add; or, split by rows, the add inside the
    walk's tasks, or split by channel blocks likewise) then the add, as one scheduled PrimFunc:
    the conv's reference, then the add's, bit for bit."""
    from primitive_cases import make_layer
    from tvm_deepchip import primitives
    from tvm_deepchip.primitives import ternary_conv2d_delta
    from tvm_deepchip.schedules import schedule_func

    co = 40 if fmt == "delta-channels" else 16  # 3 channel blocks for the channel split
    if fmt.startswith("delta-"):  # this small layer split by rows, or by channels (delta_rows)
        monkeypatch.setattr(ternary_conv2d_delta, "PARALLEL_MIN_ROW_LANES", 0)
        monkeypatch.setattr(ternary_conv2d_delta, "CHANNEL_SPLIT_SHARE", 10.0 if fmt == "delta-channels" else 0.0)
        fmt = "delta"
    rng = np.random.default_rng(4)
    kind = "int8" if fmt == "int8" else "ternary"
    layer = make_layer(rng, "conv2d", kind, (co, 8, 3, 3), pad=1, out="int8", act=None)
    shape = (1, 8, 12, 12)
    lowered = primitives.lower_layer(layer, shape, fmt, cls)
    a, b, y, lo, hi = (layer.out.scale, layer.out.zero_point, "int8"), (0.027, 0, "uint8"), (0.045, 0, "uint8"), 0.0, None
    c = int8_add.fit(a, b, y, lo, hi)
    x = te.placeholder(shape, layer.in_dtype, "x")
    consts = [te.placeholder(k.shape, str(k.dtype), f"c{i}") for i, k in enumerate(lowered.consts)]
    skip = te.placeholder(lowered.out_shape, "uint8", "skip")
    out = lowered.te_add(x, skip, c, *consts)
    tgt = targets.tvm_target(isa_devices.preset(cls))
    func = schedule_func(te.create_prim_func([x, *consts, skip, out]), tgt)
    assert "crop" not in func.script()  # inlined into the add
    lib = tvm.tirx.build(tvm.IRModule({"main": func}), target=tgt)
    isa_devices.check_assembly(cls, lib, lowered.primitive)
    qb = _codes(rng, "uint8", lowered.out_shape)
    inputs = [_codes(rng, layer.in_dtype, shape), np.full(shape, np.iinfo(layer.in_dtype).max, layer.in_dtype)]
    fused = _FusedLowered(lowered.primitive, [*lowered.consts, qb], lowered.out_shape, "uint8")
    outs = isa_devices.run(cls, fused, lib, inputs)
    for qx, got in zip(inputs, outs or []):
        np.testing.assert_array_equal(got, int8_add.reference(lowered.reference(qx), qb, c))


def _residual_model():
    """int8 conv, then a ternary conv whose int8 output is added to the first conv's (ReLU),
    then an int8 Gemm: ResNet's residual block in small."""
    from qdq_builders import QDQBuilder

    b = QDQBuilder([1, 3, 8, 8], 5)
    b.qdq(1 / 255)
    b.conv(8, 3, pad=1, weight="int8", act="relu", name="conv_in")
    b.qdq(4 / 255)
    skip = b.cur
    b.conv(8, 3, pad=1, weight="ternary", act=None, name="conv_res")
    b.qdq(3 / 128, dtype=np.int8)
    b.add(skip)
    b.activation("relu")
    b.qdq(6 / 255)
    b.flatten()
    b.gemm(10, weight="int8", name="fc")
    return b.model()


def test_residual_add_fuses_into_the_conv_and_agrees_with_onnxruntime():
    import tvm_deepchip
    from tvm_deepchip import oracle

    model = _residual_model()
    compiled = tvm_deepchip.compile(model, "x86", tuning_log=None)
    names = set(compiled.report.schedules)
    assert any(n.startswith("deepchip_ternary_conv2d_") and n.endswith("_add") for n in names), names
    assert not any(n.startswith("deepchip_int8_add") for n in names), names  # no standalone add left
    vm = relax.VirtualMachine(compiled.executable, tvm.cpu())
    rng = np.random.default_rng(6)
    for _ in range(3):
        x = rng.random((1, 3, 8, 8), dtype=np.float32)
        ours, ref = vm["main"](tvm.runtime.tensor(x)).numpy(), oracle.run(model, x)
        assert ours.argmax() == ref.argmax()
        np.testing.assert_allclose(ours, ref, atol=0.05 * np.abs(ref).max())
