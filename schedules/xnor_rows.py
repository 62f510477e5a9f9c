"""The schedule of primitives/xnor_rows (XNOR conv2d, output positions in the vector lanes): one
skeleton for every target family, the vector width from the ISA class.

Per vector of `lanes` neighbouring output positions of a row: every output channel's popcounts
as its own accumulator vector (channels unrolled, the accumulators a local array indexed by
constants: registers), the taps outermost, so each tap's input vector and mask vector are loaded
once for all channels; then the epilogue over the same positions, vectorized along them (codes:
one store a channel; bits: the channels' compares ORed into one word a position). Rows split
over the cores where the layer's popcounts reach parallel_costs' threshold. A residual add fused
after the codes (primitives/int8_add) runs on the same positions. The padded copy of the input
and its mask are plain vector loops before: on one core the whole image, on two each core the
rows its positions read, on its own stack (ResNet-44 BNN, the two builds in one process, 60
turns, medians of paired ratios: 0.970x the time, AVX-512 VNNI build; 0.976x, AVX2 build).
"""
from __future__ import annotations

from tvm_deepchip.isa import IsaClass
from tvm_deepchip.parallel_costs import PARALLEL_MIN_POPCOUNT_WORDS
from tvm_deepchip.primitives import roles
from tvm_deepchip.primitives.binary_bits import WORD_DTYPE

from .common import _acc_bits, _extent, _work, loops_below


def schedule_xnor_rows(sch, epilogue, knobs, isa: IsaClass):
    blocks = sch.get_child_blocks(sch.get_sblock("root"))
    (pcs,) = roles.having(sch, blocks, roles.ACCUMULATOR)
    lanes = isa.vector_bytes * 8 // _acc_bits(sch, pcs)  # positions a vector (int16 or int32 counts)
    loops = sch.get_loops(epilogue)
    if str(sch.get(epilogue).writes[0].source.dtype) == WORD_DTYPE:  # bit words [n, oy, ox, 1] (0.27: .source)
        n, oy, ox, inner = loops
    else:  # codes [n, c, oy, ox]
        n, inner, oy, ox = loops
        sch.reorder(n, oy, inner, ox)
    row = sch.fuse(n, oy)
    outer = None
    if _work(sch, [pcs]) >= PARALLEL_MIN_POPCOUNT_WORDS and _extent(sch, row) % 2 == 0:
        outer, row = sch.split(row, [2, None])
        sch.parallel(outer)
    at, lane = sch.split(ox, [None, lanes])
    sch.reorder(at, inner, lane)
    sch.vectorize(lane)
    for add in roles.having(sch, sch.get_consumers(epilogue), roles.RESIDUAL):  # a residual add fused after
        sch.reverse_compute_at(add, at)
        sch.vectorize(loops_below(sch, add, at)[-1])
    sch.compute_at(pcs, at)
    _popcounts(sch, pcs, at, max(1, isa.vector_registers // 2))
    for layout in roles.having(sch, blocks, roles.LAYOUT):
        if outer is not None:  # each core copies the rows its positions read, on its own stack
            sch.compute_at(layout, outer)
            sch.set_scope(layout, 0, "local")
        _copy(sch, layout, outer)
    return sch


def _popcounts(sch, pcs, at, registers: int) -> None:
    """[channel, position, *taps] under `at` -> [channel block, *taps, channel (unrolled),
    position (vector)], a block's accumulators at most `registers` vectors (AVX2's 16 registers:
    8 channels a block, so the 16 accumulators do not spill), cached in a local array."""
    channel, position, *taps = loops_below(sch, pcs, at)
    width = _extent(sch, channel)
    block = max(b for b in range(1, min(width, registers) + 1) if width % b == 0)
    outer, channel = sch.split(channel, [None, block])
    sch.reorder(outer, *taps, channel, position)
    sch.unroll(channel)
    sch.vectorize(position)
    copy = sch.cache_write(pcs, 0, "local")  # (placed under `at`, after the accumulation)
    sch.vectorize(sch.get_loops(copy)[-1])
    sch.decompose_reduction(pcs, taps[0])


def _copy(sch, block, at=None) -> None:
    """The padded input ([n, y, x, word]: zeros, then the image's rows copied in) or its mask
    ([y, x]), whole (`at` None) or the rows of one core's positions (under `at`, the parallel
    loop): each row as one vector (LLVM cuts it into native ones; a split into native vectors
    would leave a predicated tail, which TVM's vectorizer scalarizes). The input is split so that
    no load reads outside the image (a Select would load every lane: before the first row, past
    the last)."""
    image = len(sch.get(block).writes[0].source.shape) == 4  # the input's copy (the mask is [y, x]; 0.27: .source)
    loops = sch.get_loops(block) if at is None else loops_below(sch, block, at)
    if image and sch.can_decompose_padding(block, loops[0]):
        zeros = sch.decompose_padding(block, loops[0])
        sch.vectorize(sch.fuse(*(sch.get_loops(zeros) if at is None else loops_below(sch, zeros, at))))
    loops = sch.get_loops(block) if at is None else loops_below(sch, block, at)
    sch.vectorize(sch.fuse(*loops[-2:]) if at is None and len(loops) == 4 else loops[-1])
