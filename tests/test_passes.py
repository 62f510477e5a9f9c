"""Every rewrite rule on a small Relax module, compared before/after with structural equality
(as TVM's own Relax pass tests do): the 8-bit data-movement rules 1 and 2, and the layer
lowering for conv2d/dense, with and without bias, 8-bit and float output, and a layer left
float. The expected kernel is built by the same lowering function (primitives.lower_layer)
from a QuantLayer written out here, so the comparison also checks what the planner read."""
from __future__ import annotations

import numpy as np
import pytest
import tvm
from tvm import relax

from tvm_deepchip import isa, primitives
from tvm_deepchip.errors import InputError
from tvm_deepchip.layer import OutQuant, QuantLayer
from tvm_deepchip.layer_names import named_constant
from rpc_models import relax_module
from tvm_deepchip.layer_plan import FormatSource
from tvm_deepchip.layer_plan import LayerPlan
from tvm_deepchip.passes import RULES, IntegerDataMovement, LowerQuantLayers, Rule, lower_to_primitives
from tvm_deepchip.planner import LayerChoices, plan_layers

CLS = isa.get("x86-avx2")  # its int8 operand (int16) differs from the primitives' default (uint8)
S_IN, S_OUT = float(np.float32(1 / 255)), float(np.float32(4 / 255))


def const(value, dtype):
    return relax.const(np.asarray(value, dtype), dtype)


def dequantize(x, scale=S_IN, zp=0, dtype="uint8"):
    return relax.op.dequantize(x, const(scale, "float32"), const(zp, dtype), axis=1)


def quantize(y, scale=S_OUT, zp=0, dtype="uint8"):
    return relax.op.quantize(y, const(scale, "float32"), const(zp, dtype), axis=1, out_dtype=dtype)


# -- rules 1 and 2: data movement on 8-bit values ---------------------------------------------

def test_a_tensor_quantized_for_two_consumers_is_quantized_once():
    """A residual sum as ONNX QDQ imports it: quantized for the next layer and again for the skip."""
    x = relax.Var("x", relax.TensorType((1, 4, 6, 6), "uint8"))
    y = relax.Var("y", relax.TensorType((1, 4, 6, 6), "float32"))

    def block(bb, dedup):
        total = bb.emit(relax.op.nn.relu(bb.emit(relax.op.add(bb.emit(dequantize(x)), y))))
        skip = bb.emit(quantize(total))
        nxt = skip if dedup else bb.emit(quantize(total))  # the next layer's 8-bit input
        return relax.Tuple([bb.emit(dequantize(skip, scale=S_OUT)), nxt])

    before = relax_module([x, y], lambda bb: block(bb, dedup=False))
    expected = relax_module([x, y], lambda bb: block(bb, dedup=True))
    after = lower_to_primitives(LayerPlan())(before)
    tvm.ir.assert_structural_equal(after, expected)
    assert after["main"].script().count("R.quantize") == 1


def test_rule1_max_pool_runs_on_the_8bit_values():
    x = relax.Var("x", relax.TensorType((1, 4, 6, 6), "int8"))
    before = relax_module([x], lambda bb: relax.op.nn.max_pool2d(bb.emit(dequantize(x, dtype="int8")), (2, 2), (2, 2)))
    expected = relax_module([x], lambda bb: dequantize(bb.emit(relax.op.nn.max_pool2d(x, (2, 2), (2, 2))), dtype="int8"))
    tvm.ir.assert_structural_equal(IntegerDataMovement()(before), expected)


def test_rule1_reshape_runs_on_the_8bit_values():
    x = relax.Var("x", relax.TensorType((1, 4, 2, 2), "uint8"))
    before = relax_module([x], lambda bb: relax.op.reshape(bb.emit(dequantize(x)), (1, 16)))
    expected = relax_module([x], lambda bb: dequantize(bb.emit(relax.op.reshape(x, (1, 16)))))
    tvm.ir.assert_structural_equal(IntegerDataMovement()(before), expected)


def test_rule1_check_keeps_per_channel_scales_in_place():
    x = relax.Var("x", relax.TensorType((1, 4, 2, 2), "uint8"))
    scales = const(np.linspace(0.01, 0.04, 4), "float32")
    zps = const(np.zeros(4), "uint8")
    before = relax_module([x], lambda bb: relax.op.reshape(bb.emit(relax.op.dequantize(x, scales, zps, axis=1)), (1, 16)))
    tvm.ir.assert_structural_equal(IntegerDataMovement()(before), before)


def test_rule2_drops_an_identity_round_trip():
    x = relax.Var("x", relax.TensorType((1, 4, 6, 6), "uint8"))
    y = relax.Var("y", relax.TensorType((1, 4, 6, 6), "uint8"))
    before = relax_module([x, y], lambda bb: relax.op.add(bb.emit(quantize(bb.emit(dequantize(x)), scale=S_IN)), y))
    expected = relax_module([x, y], lambda bb: relax.op.add(x, y))
    tvm.ir.assert_structural_equal(relax.transform.DeadCodeElimination()(IntegerDataMovement()(before)), expected)


def test_rule2_check_keeps_a_requantization():
    x = relax.Var("x", relax.TensorType((1, 4, 6, 6), "uint8"))
    before = relax_module([x], lambda bb: quantize(bb.emit(dequantize(x)), scale=S_OUT))  # another scale
    tvm.ir.assert_structural_equal(IntegerDataMovement()(before), before)


def test_rules_1_and_2_leave_one_dequantize_after_an_8bit_max_pool():
    x = relax.Var("x", relax.TensorType((1, 4, 6, 6), "uint8"))

    def chain(bb):  # dequantize -> max_pool -> quantize -> dequantize, as ONNX QDQ imports it
        pooled = bb.emit(relax.op.nn.max_pool2d(bb.emit(dequantize(x)), (2, 2), (2, 2)))
        return dequantize(bb.emit(quantize(pooled, scale=S_IN)))

    expected = relax_module([x], lambda bb: dequantize(bb.emit(relax.op.nn.max_pool2d(x, (2, 2), (2, 2)))))
    after = relax.transform.DeadCodeElimination()(IntegerDataMovement()(relax_module([x], chain)))
    tvm.ir.assert_structural_equal(after, expected)


# -- the layer lowering ---------------------------------------------------------------------------

RNG = np.random.default_rng(0)
SIGNS = RNG.choice([-1, 0, 1], size=(4, 4, 3, 3), p=[0.1, 0.8, 0.1]).astype(np.int8)
SIGNS_FC = RNG.choice([-1, 0, 1], size=(3, 16), p=[0.2, 0.6, 0.2]).astype(np.int8)
INT8_FC = RNG.integers(-127, 128, size=(3, 16)).astype(np.int8)
WP, WN = np.float32(0.2), np.float32(0.1)
BIAS4, BIAS3 = RNG.normal(size=4).astype(np.float32), RNG.normal(size=3).astype(np.float32)
W_SCALE = RNG.uniform(0.002, 0.01, size=3).astype(np.float32)


def ternary(signs):
    return (np.where(signs > 0, WP, 0) - np.where(signs < 0, WN, 0)).astype(np.float32)


def conv_module(with_bias: bool, weight=None):
    """quantize(relu(conv2d(dequantize(x), W) [+ b])): a layer with an 8-bit output."""
    x = relax.Var("x", relax.TensorType((1, 4, 6, 6), "uint8"))

    def body(bb):
        w = named_constant(ternary(SIGNS) if weight is None else weight, "conv")
        y = bb.emit(relax.op.nn.conv2d(bb.emit(dequantize(x)), w, padding=[1, 1, 1, 1]))
        if with_bias:
            y = bb.emit(relax.op.add(y, bb.emit(relax.op.reshape(relax.const(BIAS4), (1, 4, 1, 1)))))
        return quantize(bb.emit(relax.op.nn.relu(y)))

    return x, relax_module([x], body)


def dense_module(with_bias: bool, int8_weight: bool):
    """dequantize(x) @ W [+ b] with a float output (the logits): a Gemm (W[Co, K] transposed) of
    a dequantized int8 weight, or a MatMul of a ternary W[K, Co]."""
    x = relax.Var("x", relax.TensorType((1, 16), "int8"))

    def body(bb):
        if int8_weight:
            w = relax.op.dequantize(named_constant(INT8_FC, "fc"), relax.const(W_SCALE), const(np.zeros(3), "int8"), axis=0)
            w = relax.op.permute_dims(bb.emit(w))
        else:
            w = named_constant(ternary(SIGNS_FC).T.copy(), "fc")
        y = relax.op.matmul(bb.emit(dequantize(x, zp=3, dtype="int8")), bb.emit(w) if int8_weight else w)
        return relax.op.add(bb.emit(y), relax.const(BIAS3)) if with_bias else y

    return x, relax_module([x], body)


def conv_layer(with_bias: bool) -> QuantLayer:
    return QuantLayer(name="conv", op="conv2d", weight_kind="ternary", codes=SIGNS, wp=np.full(4, WP), wn=np.full(4, WN),
                      bias=BIAS4 if with_bias else np.zeros(4, np.float32), in_scale=S_IN, in_zero_point=0,
                      in_dtype="uint8", padding=(1, 1, 1, 1), act_lo=0.0, out=OutQuant(S_OUT, 0, "uint8"))


def dense_layer(with_bias: bool, int8_weight: bool) -> QuantLayer:
    kind = dict(weight_kind="int8", codes=INT8_FC, w_scale=W_SCALE) if int8_weight else \
        dict(weight_kind="ternary", codes=SIGNS_FC, wp=np.full(3, WP), wn=np.full(3, WN))
    return QuantLayer(name="fc", op="dense", **kind, bias=BIAS3 if with_bias else np.zeros(3, np.float32),
                      in_scale=S_IN, in_zero_point=3, in_dtype="int8")


def lowered_module(x, layer: QuantLayer, fmt: str):
    """What the layer must become: one call_tir of the kernel lower_layer builds for it."""
    kernel = primitives.lower_layer(layer, tuple(int(s) for s in x.ty.shape), fmt, CLS)
    consts = [relax.const(c, str(c.dtype)) for c in kernel.consts]
    return relax_module([x], lambda bb: bb.emit_te(kernel.te_func, x, *consts, primfunc_name_hint=f"deepchip_{kernel.primitive}",
                                             primfunc_attrs={"op_pattern": 8, "deepchip_layer": layer.name}))


def assert_layer(planned, expected: QuantLayer):
    got = planned.layer
    for field in ("name", "op", "weight_kind", "in_dtype", "in_zero_point", "strides", "padding", "act_lo", "act_hi", "out"):
        assert getattr(got, field) == getattr(expected, field), field
    for field in ("codes", "wp", "wn", "w_scale", "bias"):
        a, b = getattr(got, field), getattr(expected, field)
        assert (a is None) == (b is None), field
        if a is not None:
            np.testing.assert_array_equal(a, b, err_msg=field)
    assert got.in_scale == pytest.approx(expected.in_scale, rel=1e-7)


@pytest.mark.parametrize("with_bias, fmt", [(True, "sparse"), (False, "packed")])
def test_conv2d_with_an_8bit_output_becomes_one_kernel(with_bias, fmt):
    x, before = conv_module(with_bias)
    plan = plan_layers(before, CLS, LayerChoices(default_ternary=fmt))
    planned = plan.lowered("conv")
    assert (planned.format, planned.source, planned.rule) == (fmt, FormatSource.DEFAULT, Rule("conv2d", True))
    assert_layer(planned, conv_layer(with_bias))
    after = LowerQuantLayers(plan)(before)
    tvm.ir.assert_structural_equal(after, lowered_module(x, conv_layer(with_bias), fmt))


@pytest.mark.parametrize("with_bias, int8_weight, rule", [
    (True, True, Rule("dense", False)),  # the logits: Gemm of an int8 weight, bias, float output
    (False, False, Rule("dense", False, False)),  # MatMul of a ternary weight, no bias
])
def test_dense_with_a_float_output_becomes_one_kernel(with_bias, int8_weight, rule):
    x, before = dense_module(with_bias, int8_weight)
    forced = {} if int8_weight else {"fc": "packed"}
    plan = plan_layers(before, CLS, LayerChoices(forced))
    planned = plan.lowered("fc")
    fmt, source = ("int8", FormatSource.DEFAULT) if int8_weight else ("packed", FormatSource.FORCED)
    assert (planned.format, planned.source, planned.rule) == (fmt, source, rule)
    assert_layer(planned, dense_layer(with_bias, int8_weight))
    after = relax.transform.DeadCodeElimination()(LowerQuantLayers(plan)(before))
    tvm.ir.assert_structural_equal(after, lowered_module(x, dense_layer(with_bias, int8_weight), fmt))


def test_measured_format_is_planned_with_its_source():
    from tvm_deepchip.planner import layer_key

    x, before = conv_module(True)
    plan = plan_layers(before, CLS, LayerChoices(), measured={layer_key(conv_layer(True)): "packed"})
    planned = plan.lowered("conv")
    assert (planned.format, planned.source) == ("packed", FormatSource.MEASURED)
    tvm.ir.assert_structural_equal(LowerQuantLayers(plan)(before), lowered_module(x, conv_layer(True), "packed"))


def test_a_layer_left_float_is_not_rewritten():
    """A float weight that is not ternary-valued: the plan says why, the pass changes nothing."""
    _, before = conv_module(True, weight=RNG.normal(size=(4, 4, 3, 3)).astype(np.float32))
    plan = plan_layers(before, CLS)
    assert plan.lowered("conv") is None
    assert [(r.name, r.reason) for r in plan] == [("conv", "float weight is neither ternary- nor binary-valued")]
    tvm.ir.assert_structural_equal(LowerQuantLayers(plan)(before), before)


def test_float_requested_is_not_rewritten():
    _, before = conv_module(True)
    plan = plan_layers(before, CLS, LayerChoices({"conv": "float"}))
    assert [(r.name, r.reason) for r in plan] == [("conv", "float requested")]
    tvm.ir.assert_structural_equal(LowerQuantLayers(plan)(before), before)


@pytest.mark.parametrize("make, formats, message", [
    (lambda: conv_module(True, weight=RNG.normal(size=(4, 4, 3, 3)).astype(np.float32))[1], {"conv": "sparse"},
     r"layer 'conv': cannot use format 'sparse': float weight is neither ternary- nor binary-valued"),
    (lambda: dense_module(True, True)[1], {"fc": "sparse"}, r"layer 'fc': weight is int8, not ternary"),
    (lambda: conv_module(True)[1], {"conv": "dense"}, r"layer 'conv': unknown format 'dense'"),
])
def test_plan_errors_raise_before_any_rewrite(make, formats, message):
    with pytest.raises(InputError, match=message):
        plan_layers(make(), CLS, LayerChoices(formats))


def test_rules_apply_quantized_output_first():
    assert [r.quantized_output for r in RULES] == [True, True, False, False, False, False]
    assert {r.op for r in RULES} == {"conv2d", "dense"}
