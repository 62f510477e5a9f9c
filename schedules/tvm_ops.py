"""Default schedules for TVM's own kernels in our graphs (quantize, dequantize, the residual add,
pooling, reshapes): what runs when no tuning record matches, instead of TVM's unscheduled loops.

Elementwise chains (FuseOps puts `dequantize, dequantize, add, relu, quantize` into one PrimFunc
as one block per op) are inlined into their last block, whose loops are fused and vectorized;
reductions (pooling) split their channels over the cores where that pays. Any function this
cannot handle keeps TVM's lowering: a default must never break a build.
"""
from __future__ import annotations

import logging

import tvm

from tvm_deepchip.parallel_costs import PARALLEL_MIN_WINDOW_TAPS

from .common import PARALLEL_MIN_WORK, _extent, _work

log = logging.getLogger(__name__)
VECTOR_ELEMENTS = 16  # elements per vectorized step of an elementwise loop
MIN_ROW_VECTOR, MAX_ROW_VECTOR = 8, 64  # innermost rows vectorized whole (see _vectorize_block)


def _is_spatial(sch, block) -> bool:
    return all(int(iv.iter_type) == 0 for iv in sch.get(block).iter_vars)  # 0: data parallel


def _inline_all(sch) -> None:
    """Inline every elementwise block into its consumers, repeatedly, until nothing changes."""
    changed = True
    while changed:
        changed = False
        blocks = sch.get_child_blocks(sch.get_sblock("root"))
        for b in blocks[:-1]:
            try:
                sch.compute_inline(b)
                changed = True
                break
            except Exception:  # noqa: BLE001 - not inlinable (reduction, multiple consumers...)
                continue


def _vectorize_block(sch, block) -> None:
    loops = sch.get_loops(block)
    if not loops:
        return
    if _is_spatial(sch, block):
        inner = _extent(sch, loops[-1])
        if inner % VECTOR_ELEMENTS and MIN_ROW_VECTOR <= inner <= MAX_ROW_VECTOR:
            # rows whose length is no multiple of the step (SVHN's 40x40 input): a fused loop cut
            # in steps would cross rows, and its div/mod indices leave LLVM scalar gathers and
            # stores (quantizing SVHN's input took 11 us); a whole row is one contiguous vector
            rows = sch.fuse(*loops[:-1]) if len(loops) > 1 else None
            sch.vectorize(loops[-1])
            if rows is not None and _extent(sch, rows) * inner >= PARALLEL_MIN_WORK // 16:
                sch.parallel(rows)
            return
        fused = sch.fuse(*loops)
        n = _extent(sch, fused)
        if n % VECTOR_ELEMENTS == 0 and n >= VECTOR_ELEMENTS:
            outer, inner = sch.split(fused, [None, VECTOR_ELEMENTS])
            sch.vectorize(inner)
            if n >= PARALLEL_MIN_WORK // 16:
                sch.parallel(outer)
        return
    _schedule_reduction(sch, block, loops)


def _schedule_reduction(sch, block, loops) -> None:
    """A reduction (pooling, mean) keeps TVM's loops, which LLVM vectorizes itself where it can
    (fusing the spatial loops made AlexNet's last pool 10 -> 14 us: div/mod indices; unrolling
    the window gained nothing); its leading spatial loop runs on both cores where the scalar work
    (outputs x window taps) pays a launch (parallel_costs.PARALLEL_MIN_WINDOW_TAPS)."""
    spatial = [lp for lp in loops if _extent(sch, lp) > 1][:1]
    if spatial and _work(sch, [block]) >= PARALLEL_MIN_WINDOW_TAPS:
        sch.parallel(spatial[0])


def schedule_tvm_op(func: tvm.tirx.PrimFunc) -> tvm.tirx.PrimFunc:
    sch = tvm.s_tir.Schedule(func)
    try:
        _inline_all(sch)
        for block in sch.get_child_blocks(sch.get_sblock("root")):
            _vectorize_block(sch, block)
    except Exception as err:  # noqa: BLE001 - keep TVM's lowering for anything unusual
        log.debug("default schedule skipped: %s", str(err).splitlines()[0][:200])
        return func
    return sch.mod["main"]
