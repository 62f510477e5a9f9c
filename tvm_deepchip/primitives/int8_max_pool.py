"""Max pooling of 8-bit codes (NCHW, no padding), branch-free: each output row is the max of its
window's input rows taken as whole row vectors, then of every stride-th lane of that vector
picked by shuffles (one per window column).

Why our own kernel: TVM's pool (topi) takes each output's max over its window one scalar tap at a
time, and LLVM turns that running max into compares and branches, which mispredict on real
activations: AlexNet's second pool (192 x 27 x 27 -> 13 x 13) took ~60-90 us of the whole model
(AMD EPYC znver5, perf samples) against ~22 us timed alone on random codes, and building with
LLVM's cmov-to-branch conversion off made the whole model 8% faster. Vectorizing TVM's loop over
output columns does not help: its stride-2 loads are scalarized, a load per lane. TE cannot pick
lanes of a vector, so this builds the loop nest directly (te.extern, TIR Shuffle, as the delta
walk's prefix sums do); it is also its schedule (the split over cores comes in as a parameter).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import roles
from ..parallel_costs import PARALLEL_MIN_POOL_LANES

RULE = "deepchip.int8_max_pool"
EIGHT_BITS = ("int8", "uint8")
MAX_ROW_SPAN = 256  # input bytes of a row one output row reads, held as one vector (4 zmm)


@dataclass(frozen=True)
class Pool:
    """A max pool's window: kernel (kh, kw) and strides (sh, sw)."""

    kernel: tuple
    stride: tuple

    def out_hw(self, h: int, w: int) -> tuple:
        return _outputs(h, self.kernel[0], self.stride[0]), _outputs(w, self.kernel[1], self.stride[1])

    def span(self, w: int) -> int:
        """Input columns an output row reads: from column 0 to its last window's last."""
        return (_outputs(w, self.kernel[1], self.stride[1]) - 1) * self.stride[1] + self.kernel[1]


def _outputs(n: int, k: int, s: int) -> int:
    """Windows of k at stride s along n inputs (no padding, floor)."""
    return (n - k) // s + 1


def covers(shape, dtype: str, pool_size, strides, padding, dilation, layout: str = "NCHW",
           out_layout: str = "NCHW") -> Pool | None:
    """The Pool this kernel runs for a max_pool2d of these attributes, or None (TVM's pool stays):
    8-bit NCHW input of static shape, no padding, dilation 1, and rows of at most MAX_ROW_SPAN."""
    if str(dtype) not in EIGHT_BITS or str(layout) != "NCHW" or str(out_layout) != "NCHW" or len(shape) != 4:
        return None
    if any(int(p) != 0 for p in padding) or any(int(d) != 1 for d in dilation):
        return None
    pool = Pool(tuple(int(k) for k in pool_size), tuple(int(s) for s in strides))
    h, w = (int(v) for v in shape[2:])
    if min(pool.kernel + pool.stride) < 1 or pool.kernel[0] > h or pool.kernel[1] > w:
        return None
    return pool if pool.span(w) <= MAX_ROW_SPAN else None


def reference(x: np.ndarray, pool: Pool) -> np.ndarray:
    """numpy: out[n, c, i, j] = max of x[n, c, i*sh : i*sh+kh, j*sw : j*sw+kw]."""
    (kh, kw), (sh, sw) = pool.kernel, pool.stride
    oh, ow = pool.out_hw(*x.shape[2:])
    out = np.full((*x.shape[:2], oh, ow), np.iinfo(x.dtype).min, x.dtype)
    for dy in range(kh):
        for dx in range(kw):
            out = np.maximum(out, x[:, :, dy:dy + (oh - 1) * sh + 1:sh, dx:dx + (ow - 1) * sw + 1:sw])
    return out


def compute(x, pool: Pool):
    """te.extern: the pooled codes [N, C, OH, OW] of x [N, C, H, W]; the planes (n, c) split over
    the cores where the vector lanes of the work pay a launch (PARALLEL_MIN_POOL_LANES)."""
    from tvm import te

    n, c, h, w = (int(v) for v in x.shape)
    oh, ow = pool.out_hw(h, w)
    parallel = n * c * oh * pool.kernel[0] * pool.span(w) >= PARALLEL_MIN_POOL_LANES
    return te.extern([(n, c, oh, ow)], [x], lambda ins, outs: _body(ins[0], outs[0], pool, parallel),
                     dtype=[x.dtype], name=roles.EPILOGUE_NAME, attrs=roles.epilogue_attrs(RULE))


def _body(x, out, pool: Pool, parallel: bool):
    from tvm import tirx
    from tvm.script.ir_builder import IRBuilder
    from tvm.tirx.script import builder as T

    (kh, kw), (sh, sw) = pool.kernel, pool.stride
    n_img, chans, _, w = (int(v) for v in x.shape)
    oh, ow = (int(v) for v in out.shape[2:])
    span = pool.span(w)
    with IRBuilder() as ib:
        with (T.parallel if parallel else T.serial)(0, n_img * chans) as plane:
            n, c = plane // chans, plane % chans
            row = T.alloc_buffer((span,), x.dtype, scope="global")  # on the stack: a register
            picked = T.alloc_buffer((ow,), x.dtype, scope="global")
            whole = tirx.Ramp(0, 1, span)
            with T.serial(0, oh) as i:
                with T.vectorized(0, span) as v:
                    T.buffer_store(row, x[n, c, i * sh, v], [v])
                for dy in range(1, kh):
                    with T.vectorized(0, span) as v:
                        T.buffer_store(row, tirx.max(row[v], x[n, c, i * sh + dy, v]), [v])
                vec = tirx.BufferLoad(row, [whole])
                best = None
                for dx in range(kw):
                    lanes = tirx.Shuffle([vec], [j * sw + dx for j in range(ow)])
                    best = lanes if best is None else tirx.max(best, lanes)
                T.buffer_store(picked, best, [tirx.Ramp(0, 1, ow)] if ow > 1 else [0])
                with T.vectorized(0, ow) as j:
                    T.buffer_store(out, picked[j], [n, c, i, j])
    return ib.get()
