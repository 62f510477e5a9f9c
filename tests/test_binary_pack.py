"""binary_pack: binarize-and-pack and max pooling on bits, each TE compute equal to its numpy
reference, and the references equal to the float semantics they replace (ONNX's Where(x >= tau)
on a dequantized or float input, and MaxPool of +-1 values)."""
from __future__ import annotations

import numpy as np
import pytest
import tvm
from tvm import te

from tvm_deepchip import targets
from tvm_deepchip.primitives import binary_bits, binary_pack
from tvm_deepchip.schedules import schedule_func


def _run(fcompute, inputs, out_dtype="uint32"):
    holders = [te.placeholder(a.shape, str(a.dtype), name=f"a{i}") for i, a in enumerate(inputs)]
    out = fcompute(*holders)
    tgt = targets.tvm_target(targets.get_preset("x86"))
    func = te.create_prim_func([*holders, out])
    if fcompute is binary_pack.te_pack:  # scheduled as the build does (its rule: schedules/xnor.py)
        func = schedule_func(func, tgt)
    lib = tvm.tirx.build(tvm.IRModule({"main": func}), target=tgt)
    args = [tvm.runtime.tensor(a) for a in inputs] + [tvm.runtime.empty([int(s) for s in out.shape], out_dtype, tvm.cpu())]
    lib["main"](*args)
    return args[-1].numpy()


@pytest.mark.parametrize("dtype, scale, zp", [("uint8", 1 / 255, 0), ("uint8", 0.02, 7), ("int8", 0.05, 0)])
def test_code_thresholds_are_the_float32_compare(dtype, scale, zp):
    info = np.iinfo(dtype)
    codes = np.arange(info.min, info.max + 1)
    values = (codes - zp).astype(np.float32) * np.float32(scale)
    tau = np.array([values[5], values[5] + 1e-4, -1e9, 1e9, 0.0, values[-1]], np.float32)  # ties, none, all
    thr = binary_pack.code_thresholds(scale, zp, dtype, tau)
    np.testing.assert_array_equal(codes[None, :] >= thr[:, None], values[None, :] >= tau[:, None])
    assert thr[3] == info.max + 1 and thr[2] == info.min


@pytest.mark.parametrize("shape", [(2, 37, 5, 3), (1, 64, 4, 4), (3, 70)])
def test_pack_from_codes_and_floats(shape):
    rng = np.random.default_rng(0)
    c = shape[1]
    codes = rng.integers(0, 256, size=shape).astype(np.int32)
    thr = rng.integers(0, 256, size=c).astype(np.int32)
    got = _run(binary_pack.te_pack, [codes, thr])
    ref = binary_pack.np_pack(codes, thr)
    np.testing.assert_array_equal(got, ref)
    bits = binary_bits.np_unpack(ref, c)  # the compare, channel by channel, channels last
    np.testing.assert_array_equal(bits, np.moveaxis(codes >= thr.reshape((1, -1) + (1,) * (len(shape) - 2)), 1, -1))
    x = rng.normal(size=shape).astype(np.float32)
    tau = rng.normal(size=c).astype(np.float32)
    np.testing.assert_array_equal(_run(binary_pack.te_pack, [x, tau]), binary_pack.np_pack(x, tau))


@pytest.mark.parametrize("pool", [binary_pack.Pool((2, 2), (2, 2), (0, 0, 0, 0)),
                                  binary_pack.Pool((3, 3), (2, 2), (1, 1, 1, 1)),
                                  binary_pack.Pool((3, 2), (1, 2), (0, 1, 2, 0))])
def test_pool_on_bits_is_max_pool_of_signs(pool):
    rng = np.random.default_rng(1)
    n, c, h, w = 2, 45, 7, 6
    signs = rng.choice([-1.0, 1.0], size=(n, c, h, w)).astype(np.float32)
    bits = binary_bits.np_pack(np.moveaxis(signs > 0, 1, -1))
    got = _run(lambda b: binary_pack.te_pool(b, pool), [bits])
    ref = binary_pack.np_pool(bits, pool)
    np.testing.assert_array_equal(got, ref)
    # the float max pool (padding -inf, as ONNX MaxPool) of the +-1 values, packed
    t, l, b, r = pool.padding
    padded = np.pad(signs, ((0, 0), (0, 0), (t, b), (l, r)), constant_values=-np.inf)
    ho, wo = pool.out_hw(h, w)
    pooled = np.full((n, c, ho, wo), -np.inf, np.float32)
    for ky in range(pool.size[0]):
        for kx in range(pool.size[1]):
            tap = padded[:, :, ky:ky + pool.strides[0] * ho:pool.strides[0], kx:kx + pool.strides[1] * wo:pool.strides[1]]
            pooled = np.maximum(pooled, tap[:, :, :ho, :wo])
    np.testing.assert_array_equal(ref, binary_bits.np_pack(np.moveaxis(pooled > 0, 1, -1)))
