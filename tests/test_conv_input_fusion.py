"""A conv kernel reads the input of the op producing its input (passes/conv_input_fusion.py):
- a max pool read only by a delta conv (ternary_conv2d_delta.compute_pooled) or an int8 conv
  with a grouped layout copy (int8_conv2d.compute_pooled): the kernel over the pool's input is
  bit-exact against the conv's reference of the pooled codes on every ISA
  class (SVHN ConvNet's 2x2 pools, AlexNet's overlapping 3x3 stride 2 over an odd width, signed
  codes, batch 2, saturated codes); so are the small-map forms (sparse rows, packed windows, the
  dot form) over a 2x2 pool's input;
- the model input's quantize read only by a first layer (int8_conv2d.compute_quantized,
  int8_dense's): the kernel over the floats is bit-exact against the layer's reference of their
  codes on every class (folded kernel columns, a padded layer, a grouped layout, a dense layer;
  ties of the rounding, values past the codes' range), and the numpy quantize is onnxruntime's
  QuantizeLinear;
- in a compiled model the pool and the quantize kernels are gone where the conv reads their
  input, and stay where something else reads them too; the model agrees with onnxruntime.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

import isa_devices
from primitive_cases import all_classes, build_func, make_layer, random_input
from qdq_builders import QDQBuilder
from tvm_deepchip import oracle, primitives
from tvm_deepchip.primitives import input_quantize, int8_max_pool

# (pre-pool input shape, pool, conv weights, input codes)
CASES = [
    ((1, 48, 36, 36), int8_max_pool.Pool((2, 2), (2, 2)), (64, 48, 3, 3), "uint8"),  # SVHN ConvNet's conv2
    ((1, 24, 27, 27), int8_max_pool.Pool((3, 3), (2, 2)), (32, 24, 3, 3), "int8"),  # AlexNet's windows
    ((2, 16, 18, 18), int8_max_pool.Pool((2, 2), (2, 2)), (32, 16, 3, 3), "int8"),  # batch 2
]


def _pooled(layer, pre_shape, pool, cls, fmt):
    """The layer lowered for the pooled shape, and that lowering over the pool's input."""
    shape = (*pre_shape[:2], *pool.out_hw(*pre_shape[2:]))
    lowered = primitives.lower_layer(layer, shape, fmt, cls)
    assert lowered.te_pooled is not None
    return lowered, replace(lowered, in_shape=pre_shape, te_func=lambda x, *c: lowered.te_pooled(x, pool, *c))


@pytest.mark.parametrize("cls", all_classes())
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0][1]}x{c[0][2]}x{c[0][3]}_k{c[1].kernel[0]}_{c[3]}")
@pytest.mark.parametrize("kind, fmt", [("ternary", "delta"), ("int8", "int8")])
def test_conv_over_the_pools_input_bit_exact(cls, case, kind, fmt):
    """The delta conv's row tasks, and the int8 conv's grouped layout copy (a BWN model's layer
    after a pool), over the pool's input."""
    pre_shape, pool, w_shape, dtype = case
    rng = np.random.default_rng(31)
    layer = make_layer(rng, "conv2d", kind, w_shape, pad=1, in_dtype=dtype)
    lowered, over_pool = _pooled(layer, pre_shape, pool, cls, fmt)
    lib = build_func(over_pool, tgt=isa_devices.preset(cls))
    isa_devices.check_assembly(cls, lib, over_pool.primitive)
    inputs = [random_input(rng, dtype, pre_shape), random_input(rng, dtype, pre_shape, saturated=True)]
    refs = [lowered.reference(int8_max_pool.reference(qx, pool)) for qx in inputs]
    outs = isa_devices.run(cls, over_pool, lib, inputs)
    for got, ref in zip(outs or [], refs):
        np.testing.assert_array_equal(got, ref)


# (pre-pool input shape, pool, conv weights, padding, input codes, format): the digits model's
# small maps (4x4 -> 2x2, 2x2 -> 1x1), an odd channel count (one core), a 4x4 map
SMALL_CASES = [
    ((1, 64, 4, 4), (64, 64, 3, 3), 1, "uint8", "sparse"),
    ((1, 48, 8, 8), (33, 48, 3, 3), 1, "int8", "sparse"),
    ((1, 64, 4, 4), (128, 64, 3, 3), 1, "uint8", "packed"),
    ((2, 128, 2, 2), (512, 128, 1, 1), 0, "int8", "packed"),
    ((1, 128, 2, 2), (512, 128, 1, 1), 0, "uint8", "dot"),
    ((2, 40, 4, 4), (256, 40, 2, 2), 0, "int8", "dot"),
]


@pytest.mark.parametrize("cls", all_classes())
@pytest.mark.parametrize("case", SMALL_CASES, ids=lambda c: f"{c[4]}_{c[0][1]}x{c[0][2]}_to{c[1][0]}_{c[3]}")
def test_small_map_convs_over_the_pools_input_bit_exact(cls, case):
    """The small-map forms over a 2x2 stride-2 pool's input: the sparse rows' layout copy (each
    core's own), the packed windows' grouped layout copy (staged rows), the dot form's image read
    (a conv covering its input)."""
    pre_shape, w_shape, pad, dtype, fmt = case
    pool = int8_max_pool.Pool((2, 2), (2, 2))
    rng = np.random.default_rng(37)
    layer = make_layer(rng, "conv2d", "ternary", w_shape, pad=pad, in_dtype=dtype, sparsity=0.9)
    lowered, over_pool = _pooled(layer, pre_shape, pool, cls, fmt)
    lib = build_func(over_pool, tgt=isa_devices.preset(cls))
    inputs = [random_input(rng, dtype, pre_shape), random_input(rng, dtype, pre_shape, saturated=True)]
    refs = [lowered.reference(int8_max_pool.reference(qx, pool)) for qx in inputs]
    outs = isa_devices.run(cls, over_pool, lib, inputs)
    for got, ref in zip(outs or [], refs):
        np.testing.assert_array_equal(got, ref)


# (conv weights, input shape, padding, codes): SVHN ConvNet's conv1 (folded kernel columns), a
# padded folded layer, a grouped layout (16 channels)
QUANT_CASES = [((48, 3, 5, 5), (1, 3, 40, 40), 0, "uint8"), ((8, 3, 3, 3), (2, 3, 12, 12), 1, "int8"),
               ((16, 16, 3, 3), (1, 16, 10, 10), 1, "uint8")]


def _floats(rng, quant, shape):
    """Floats over and past the codes' range, a tenth of them halfway between two codes."""
    info = np.iinfo(quant.dtype)
    codes = rng.integers(info.min - quant.zero_point - 8, info.max - quant.zero_point + 8, size=shape)
    x = (codes + rng.random(shape) * (rng.random(shape) > 0.1) + 0.5 * (rng.random(shape) <= 0.1)) * quant.scale
    return x.astype(np.float32)


def test_numpy_quantize_is_onnxruntimes():
    from qdq_builders import quantize_model

    rng = np.random.default_rng(4)
    for quant in (input_quantize.InputQuantize(0.02, 3, "uint8"), input_quantize.InputQuantize(0.05, -7, "int8")):
        x = _floats(rng, quant, (1, 4, 9, 9))
        np.testing.assert_array_equal(quant.np_codes(x), oracle.run(quantize_model(quant, x.shape), x))


@pytest.mark.parametrize("cls", all_classes())
@pytest.mark.parametrize("case", QUANT_CASES, ids=lambda c: f"{c[0][1]}x{c[1][2]}_pad{c[2]}_{c[3]}")
def test_conv_over_float_input_bit_exact(cls, case):
    w_shape, shape, pad, dtype = case
    rng = np.random.default_rng(41)
    layer = make_layer(rng, "conv2d", "int8", w_shape, pad=pad, in_dtype=dtype)
    quant = input_quantize.InputQuantize(0.0123, int(layer.in_zero_point), dtype)
    lowered = primitives.lower_layer(layer, shape, "int8", cls)
    assert lowered.te_quantized is not None
    over_floats = replace(lowered, in_dtype="float32", te_func=lambda x, *c: lowered.te_quantized(x, quant, *c))
    lib = build_func(over_floats, tgt=isa_devices.preset(cls))
    isa_devices.check_assembly(cls, lib, over_floats.primitive)
    inputs = [_floats(rng, quant, shape) for _ in range(2)]
    refs = [lowered.reference(quant.np_codes(x)) for x in inputs]
    outs = isa_devices.run(cls, over_floats, lib, inputs)
    for got, ref in zip(outs or [], refs):
        np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("cls", all_classes())
def test_dense_over_float_input_bit_exact(cls):
    """An MLP's first layer (int8_dense): the floats quantized as its input groups are copied."""
    rng = np.random.default_rng(43)
    layer = make_layer(rng, "dense", "int8", (40, 100), in_dtype="uint8")
    quant = input_quantize.InputQuantize(0.031, int(layer.in_zero_point), "uint8")
    lowered = primitives.lower_layer(layer, (2, 100), "int8", cls)
    over_floats = replace(lowered, in_dtype="float32", te_func=lambda x, *c: lowered.te_quantized(x, quant, *c))
    lib = build_func(over_floats, tgt=isa_devices.preset(cls))
    inputs = [_floats(rng, quant, (2, 100)) for _ in range(2)]
    outs = isa_devices.run(cls, over_floats, lib, inputs)
    for got, x in zip(outs or [], inputs):
        np.testing.assert_array_equal(got, lowered.reference(quant.np_codes(x)))


def _pool_then_conv(second_reader: bool):
    """An int8 conv, a 2x2 pool, a ternary conv large enough for its row tasks, and (where
    `second_reader`) a second branch reading the pool too, summed before the classifier."""
    b = QDQBuilder([1, 3, 36, 36], seed=5)
    b.qdq(1 / 255)
    b.conv(16, 3, pad=1, weight="int8", act="relu", name="conv_first")
    b.qdq(8 / 255)
    b.maxpool()
    pooled, pooled_shape = b.qdq(8 / 255), list(b.shape())
    b.conv(32, 3, pad=1, act="relu", name="conv_t", sparsity=0.9)
    b.qdq(8 / 255)
    if second_reader:
        branch = b.cur
        b.cur, b._shape = pooled, pooled_shape
        b.conv(32, 1, act="relu", name="conv_side", sparsity=0.9)
        b.qdq(8 / 255)
        b.add(branch)
        b.qdq(16 / 255)
    b.flatten()
    b.qdq(16 / 255)
    b.gemm(10, weight="int8", name="fc_last")
    return b.model()


@pytest.mark.parametrize("second_reader", [False, True])
def test_compiled_pool_and_quantize_are_gone_where_the_conv_reads_their_input(second_reader):
    import tvm
    from tvm import relax

    import tvm_deepchip
    from test_compiler import last_layer_step
    from tvm_deepchip import compiler, targets

    model = _pool_then_conv(second_reader)
    names = {gv.name_hint for gv in compiler.lower(model, targets.resolve("x86")).mod.functions}
    assert any(n.startswith("deepchip_ternary_conv2d_delta_pooled") for n in names) is not second_reader
    assert any("max_pool" in n for n in names) is second_reader
    assert "deepchip_int8_conv2d_quantized" in names and not any(n.startswith("quantize") for n in names)
    compiled = tvm_deepchip.compile(model, "x86", default_ternary="delta", tuning_log=None)
    vm = relax.VirtualMachine(compiled.executable, tvm.cpu())
    rng, step = np.random.default_rng(2), last_layer_step(model)
    for _ in range(3):
        x = rng.random((1, 3, 36, 36), dtype=np.float32)
        ours, ref = vm["main"](tvm.runtime.tensor(x)).numpy(), oracle.run(model, x)
        assert ours.argmax() == ref.argmax()
        assert np.all(np.abs(ours - ref) <= step + 1e-4), (np.abs(ours - ref).max(), step.min())
