"""schedules/tvm_ops.py: TVM's own kernels in our graphs (quantize, residual adds) get vectorized
default schedules that compute exactly what TVM's unscheduled lowering computes."""
import numpy as np
import pytest
import tvm
from tvm import te, tirx

from primitive_cases import target
from tir_loops import loops, runs_on_cores
from tvm_deepchip.schedules.tvm_ops import schedule_tvm_op

SCALE = 0.0039215558208525181  # SVHN's input scale


def _quantize(shape):
    """relax.quantize's legalized form: round(x / s), clipped to uint8."""
    x = te.placeholder(shape, "float32", name="x")
    y = te.compute(shape, lambda *i: te.max(te.min(tirx.round(x(*i) / tirx.const(SCALE, "float32")),
                                                   tirx.const(255.0, "float32")), tirx.const(0.0, "float32")).astype("uint8"),
                   name="q")
    return te.create_prim_func([x, y])


def _run(func, x, out_dtype, out_shape=None):
    lib = tvm.tirx.build(tvm.IRModule({"main": func}), target=target())
    y = tvm.runtime.empty(out_shape or x.shape, out_dtype, tvm.cpu())
    lib["main"](tvm.runtime.tensor(x), y)
    return y.numpy()


@pytest.mark.parametrize("shape", [(1, 3, 40, 40), (1, 16, 32, 32), (1, 64, 8, 8), (1, 5, 7, 7)])
def test_quantize_scheduled_equals_unscheduled(shape):
    x = np.random.default_rng(0).random(shape, dtype=np.float32) * 1.2 - 0.1  # some clipped at both ends
    x.flat[:4] = np.array([0.5, 1.5, 2.5, 3.5], np.float32) * SCALE  # near-ties
    func = _quantize(shape)
    got = _run(schedule_tvm_op(func), x, "uint8")
    np.testing.assert_array_equal(got, _run(func, x, "uint8"))
    assert got.min() == 0 and got.max() == 255


@pytest.mark.parametrize("shape, vector", [((1, 3, 40, 40), 40), ((1, 16, 32, 32), 16), ((1, 64, 8, 8), 8)])
def test_rows_whose_length_is_no_multiple_of_the_step_are_whole_vectors(shape, vector):
    """A 40- or 8-wide row is one contiguous vector (a fused loop cut in 16s would cross rows
    and leave LLVM scalar gathers); a 32-wide one is cut in steps of 16."""
    inner = [lp for lp in loops(schedule_tvm_op(_quantize(shape)).body) if lp.kind == tvm.tirx.ForKind.VECTORIZED]
    assert [int(lp.extent) for lp in inner] == [vector]


def _max_pool(shape, window, stride):
    """A max pool as TVM's pooling lowers it: one reduction block over the window."""
    x = te.placeholder(shape, "uint8", name="x")
    n, c, h, w = shape
    oh, ow = (h - window) // stride + 1, (w - window) // stride + 1
    rh, rw = te.reduce_axis((0, window), "rh"), te.reduce_axis((0, window), "rw")
    y = te.compute((n, c, oh, ow), lambda b, k, i, j: te.max(x[b, k, i * stride + rh, j * stride + rw], axis=[rh, rw]),
                   name="pool_max")
    return te.create_prim_func([x, y]), (n, c, oh, ow)


@pytest.mark.parametrize("shape, window, stride, parallel", [((1, 192, 27, 27), 3, 2, True), ((1, 48, 36, 36), 2, 2, False)])
def test_pools_split_channels_over_cores_where_the_window_work_pays(shape, window, stride, parallel):
    """AlexNet's 192x27x27 3x3/2 pool (292 K window taps) runs its channels on both cores; SVHN's
    48x36x36 2x2 pool (62 K) stays on one. Both compute what the unscheduled loops compute."""
    from tvm_deepchip.parallel_costs import PARALLEL_MIN_WINDOW_TAPS

    func, out_shape = _max_pool(shape, window, stride)
    assert (int(np.prod(out_shape)) * window * window >= PARALLEL_MIN_WINDOW_TAPS) == parallel
    scheduled = schedule_tvm_op(func)
    assert runs_on_cores(scheduled) == parallel
    x = np.random.default_rng(3).integers(0, 256, size=shape, dtype=np.uint8)
    got, want = (_run(f, x, "uint8", out_shape) for f in (scheduled, func))
    np.testing.assert_array_equal(got, want)
    assert got.max() == 255 and got.min() > 0  # the window's max, not an untouched output
