"""Shared harness of the primitive tests: random layers, one build per case, bit-exact checks.

Every primitive test builds the TE compute with a schedule (our default, or randomly sampled
knobs as the tuner would pick them), runs it on x86 and compares with the numpy reference of
the same integer arithmetic, bit for bit. The float-output epilogue is compared to float32
rounding instead (LLVM may contract a*b+c into one FMA)."""
from __future__ import annotations

import numpy as np
import tvm
from tvm import te

from tvm_deepchip import primitives, targets
from tvm_deepchip.layer import OutQuant, QuantLayer, float_semantics
from tvm_deepchip.schedules import Sampled, schedule_func

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
    else:
        signs = rng.integers(-127, 128, size=wshape).astype(np.int8)
        kw = dict(w_scale=rng.uniform(1e-3, 1e-2, co).astype(np.float32))
    k = int(np.prod(wshape[1:]))
    layer = QuantLayer(
        name=f"{op}_{kind}", op=op, weight_kind=kind, signs=signs,
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
            0.3 if kind == "ternary" else 127 * 5e-3)
        layer.out = OutQuant(float(spread / 64), int(rng.integers(0, 10)) if out == "uint8" else 0, out)
    return layer


def random_input(rng, dtype, shape, saturated=False):
    info = np.iinfo(dtype)
    if saturated:
        return np.full(shape, info.max, dtype)
    return rng.integers(info.min, info.max + 1, size=shape).astype(dtype)


def build(layer, in_shape, fmt, knobs=None, seed=0):
    """(lowered, built library) of one layer in `fmt`, scheduled for x86."""
    lowered = primitives.lower_layer(layer, in_shape, fmt)
    x = te.placeholder(in_shape, layer.in_dtype, name="x")
    consts = [te.placeholder(c.shape, str(c.dtype), name=f"c{i}") for i, c in enumerate(lowered.consts)]
    func = te.create_prim_func([x, *consts, lowered.te_func(x, *consts)])
    if knobs == "sampled":
        func = _sampled(func, seed)
    else:
        func = schedule_func(func, target())
    return lowered, tvm.tirx.build(tvm.IRModule({"main": func}), target=target())


def _sampled(func, seed):
    from tvm_deepchip.schedules import _RULES, _load_all, tagged_block

    _load_all()
    name, rule = tagged_block(func)
    sch = tvm.s_tir.Schedule(func, seed=seed + 1)
    _RULES[("cpu", rule)](sch, sch.get_sblock(name), Sampled())
    return sch.mod["main"]


def run(lowered, lib, qx):
    dev = tvm.cpu()
    args = [tvm.runtime.tensor(qx, dev)] + [tvm.runtime.tensor(c, dev) for c in lowered.consts]
    args.append(tvm.runtime.empty(lowered.out_shape, lowered.out_dtype, dev))
    lib["main"](*args)
    return args[-1].numpy()


def check(layer, in_shape, fmt, rng, knobs=None, seed=0, saturated=False):
    """Kernel == reference (bit-exact for 8-bit outputs); reference == float semantics within
    one quantization step (fixed-point vs exact rounding at near-ties)."""
    lowered, lib = build(layer, in_shape, fmt, knobs, seed)
    qx = random_input(rng, layer.in_dtype, in_shape, saturated)
    got, ref = run(lowered, lib, qx), lowered.reference(qx)
    assert got.shape == ref.shape == lowered.out_shape
    if layer.out is not None:
        np.testing.assert_array_equal(got, ref)
        exact = float_semantics(layer, qx).astype(np.int64)
        diff = np.abs(ref.astype(np.int64) - exact)
        assert diff.max() <= 1 and diff.mean() < 0.01, (diff.max(), diff.mean())
        assert len(np.unique(ref)) > 1 or saturated, "degenerate test: constant output"
    else:
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())
        np.testing.assert_allclose(ref, float_semantics(layer, qx), rtol=1e-4, atol=1e-4 * np.abs(ref).max())
    return got
