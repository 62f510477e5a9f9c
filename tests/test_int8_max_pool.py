"""int8_max_pool (primitives/int8_max_pool.py) and its rewrite rule (passes/integer_pool.py): the
branch-free max pool of 8-bit codes.

- the numpy reference against a window-by-window loop;
- the kernel bit-exact against the reference on every ISA class (natively, or on the aarch64 RPC
  device): AlexNet's and SVHN ConvNet's pools, rectangular windows and strides, one output
  column, a row at the widest span, batches, both code types at their extremes;
- what it refuses (TVM's pool stays): padding, dilation, other layouts and types, wide rows;
- the rule before/after on a Relax module, and its result through a build equal to TVM's pool.
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
from tir_loops import loops
from tvm_deepchip import targets
from tvm_deepchip.passes import IntegerPool
from tvm_deepchip.primitives import int8_max_pool
from tvm_deepchip.schedules import schedule_func

# (shape, kernel, stride, dtype)
CASES = [
    ((1, 192, 27, 27), (3, 3), (2, 2), "uint8"),  # AlexNet's second pool
    ((1, 48, 36, 36), (2, 2), (2, 2), "int8"),  # SVHN ConvNet's first
    ((2, 5, 7, 9), (2, 3), (1, 2), "int8"),  # rectangular window and strides, batch 2
    ((1, 3, 5, 4), (3, 4), (1, 1), "uint8"),  # one output column
    ((1, 2, 3, 257), (2, 2), (2, 2), "uint8"),  # a span of 256: the widest row held as a vector
    ((1, 4, 6, 6), (3, 3), (3, 3), "int8"),  # windows that do not overlap
]


def _codes(rng, dtype, shape):
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max + 1, size=shape).astype(dtype)


def _pool(case) -> int8_max_pool.Pool:
    shape, k, s, dt = case
    pool = int8_max_pool.covers(shape, dt, k, s, (0, 0, 0, 0), (1, 1))
    assert pool is not None
    return pool


def test_reference_is_the_max_over_each_window():
    rng = np.random.default_rng(0)
    for case in CASES[2:]:
        shape, (kh, kw), (sh, sw), dt = case
        x = _codes(rng, dt, shape)
        got = int8_max_pool.reference(x, _pool(case))
        oh, ow = (shape[2] - kh) // sh + 1, (shape[3] - kw) // sw + 1
        assert got.shape == (*shape[:2], oh, ow) and got.dtype == x.dtype
        for i in range(oh):
            for j in range(ow):
                window = x[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw]
                np.testing.assert_array_equal(got[:, :, i, j], window.max(axis=(2, 3)))


@pytest.mark.parametrize("shape, dtype, kernel, strides, padding, dilation, layout", [
    ((1, 8, 9, 9), "uint8", (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), "NCHW"),  # padding
    ((1, 8, 9, 9), "uint8", (3, 3), (2, 2), (0, 0, 0, 0), (2, 2), "NCHW"),  # dilation
    ((1, 9, 9, 8), "uint8", (3, 3), (2, 2), (0, 0, 0, 0), (1, 1), "NHWC"),  # another layout
    ((1, 8, 9, 9), "float32", (3, 3), (2, 2), (0, 0, 0, 0), (1, 1), "NCHW"),  # not 8-bit
    ((1, 8, 9, 9), "int16", (3, 3), (2, 2), (0, 0, 0, 0), (1, 1), "NCHW"),
    ((1, 2, 4, 259), "uint8", (2, 2), (2, 2), (0, 0, 0, 0), (1, 1), "NCHW"),  # a span of 258 bytes
    ((1, 2, 2, 2), "uint8", (3, 3), (1, 1), (0, 0, 0, 0), (1, 1), "NCHW"),  # window larger than the map
])
def test_refuses_what_it_does_not_run(shape, dtype, kernel, strides, padding, dilation, layout):
    assert int8_max_pool.covers(shape, dtype, kernel, strides, padding, dilation, layout, layout) is None


@dataclass
class _Lowered:
    """What isa_devices.run reads of a kernel: no constants, its output."""

    primitive: str
    out_shape: tuple
    out_dtype: str
    consts: tuple = ()


def _build(case, cls):
    shape, _, _, dt = case
    x = te.placeholder(shape, dt, "x")
    func = te.create_prim_func([x, int8_max_pool.compute(x, _pool(case))])
    func = schedule_func(func, targets.tvm_target(isa_devices.preset(cls)))
    return tvm.tirx.build(tvm.IRModule({"main": func}), target=targets.tvm_target(isa_devices.preset(cls)))


def _case_id(c):
    return "x".join(map(str, c[0])) + f"-k{c[1][0]}{c[1][1]}-s{c[2][0]}{c[2][1]}-{c[3]}"


@pytest.mark.parametrize("cls", all_classes())
@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_kernel_bit_exact_on_every_isa_class(cls, case):
    shape, _, _, dt = case
    pool = _pool(case)
    lib = _build(case, cls)
    isa_devices.check_assembly(cls, lib, "int8_max_pool")
    rng = np.random.default_rng(4)
    info = np.iinfo(dt)
    inputs = [_codes(rng, dt, shape), np.full(shape, info.max, dt), np.full(shape, info.min, dt)]
    sparse = _codes(rng, dt, shape)
    sparse[rng.random(shape) < 0.7] = 0  # a ReLU's output: mostly the zero point
    inputs.append(sparse)
    out_shape = (*shape[:2], *pool.out_hw(*shape[2:]))
    outs = isa_devices.run(cls, _Lowered("int8_max_pool", out_shape, dt), lib, inputs)
    if outs is None:
        return  # an x86 class this CPU lacks: assembly checked
    for x, got in zip(inputs, outs):
        np.testing.assert_array_equal(got, int8_max_pool.reference(x, pool))
    assert len(np.unique(outs[0])) > 1


# -- the rewrite rule --------------------------------------------------------------------------

def _pool_module(shape, dtype, padding=(0, 0)):
    x = relax.Var("x", relax.TensorType(shape, dtype))
    return x, relax_module([x], lambda bb: relax.op.nn.max_pool2d(x, (3, 3), (2, 2), padding))


def test_rule_replaces_an_8bit_pool_by_the_kernel():
    shape = (1, 16, 13, 13)
    x, before = _pool_module(shape, "uint8")
    pool = int8_max_pool.covers(shape, "uint8", (3, 3), (2, 2), (0, 0, 0, 0), (1, 1))
    expected = relax_module([x], lambda bb: bb.emit_te(lambda t: int8_max_pool.compute(t, pool), x,
                                                        primfunc_name_hint="deepchip_max_pool"))
    tvm.ir.assert_structural_equal(IntegerPool()(before), expected)


@pytest.mark.parametrize("dtype, padding", [("float32", (0, 0)), ("uint8", (1, 1))])
def test_rule_leaves_float_and_padded_pools_to_tvm(dtype, padding):
    _, before = _pool_module((1, 16, 13, 13), dtype, padding)
    tvm.ir.assert_structural_equal(IntegerPool()(before), before)


@pytest.mark.parametrize("dtype", ["int8", "uint8"])
def test_rule_result_equals_tvms_pool_through_a_build(dtype):
    shape = (2, 24, 27, 27)
    _, before = _pool_module(shape, dtype)
    after = IntegerPool()(before)
    assert "deepchip_max_pool" in [gv.name_hint for gv in after.functions]
    tgt = targets.tvm_target(targets.get_preset("x86"))
    ours, tvms = (relax.VirtualMachine(tvm.compile(m, tgt), tvm.cpu()) for m in (after, before))
    x = _codes(np.random.default_rng(5), dtype, shape)
    got = ours["main"](tvm.runtime.tensor(x)).numpy()
    np.testing.assert_array_equal(got, tvms["main"](tvm.runtime.tensor(x)).numpy())
    assert got.shape == (2, 24, 13, 13)


@pytest.mark.parametrize("cls", all_classes())
def test_planes_split_over_cores_bit_exact(cls, monkeypatch):
    """The parallel form (planes on TVM's thread pool, each with its own row vector) gives the
    reference's codes too; forced on for a pool below PARALLEL_MIN_POOL_LANES."""
    monkeypatch.setattr(int8_max_pool, "PARALLEL_MIN_POOL_LANES", 0)
    case = CASES[2]
    shape, _, _, dt = case
    pool = _pool(case)
    t = te.placeholder(shape, dt, "x")
    kinds = {int(lp.kind) for lp in loops(te.create_prim_func([t, int8_max_pool.compute(t, pool)]).body)}
    assert int(tvm.tirx.ForKind.PARALLEL) in kinds
    lib = _build(case, cls)
    x = _codes(np.random.default_rng(6), dt, shape)
    outs = isa_devices.run(cls, _Lowered("int8_max_pool", (*shape[:2], *pool.out_hw(*shape[2:])), dt), lib, [x])
    if outs is not None:
        np.testing.assert_array_equal(outs[0], int8_max_pool.reference(x, pool))
