"""The XNOR primitives' schedule (primitives/xnor_conv2d, xnor_dense; and binary_pack's packing,
which is their epilogue without popcounts): one skeleton for every target family, the vector
width from the ISA class.

Per output position (conv: n, oy, ox fused; dense: n), the popcounts of all output channels:
for each tap and input word, the input word is broadcast and XORed with a block of `blocks`
vectors of the channels' weight words (adjacent in the packed weights), each popcounted and
added to its accumulator vector. LLVM emits the vector popcount of the ISA: AVX-512
VPOPCNTD where the CPU has VPOPCNTDQ, the nibble lookup (`vpshufb`) on AVX2 and AVX-512 without
it, `cnt` + pairwise adds on NEON. The accumulators live in a local array indexed by constants
(registers). Then the epilogue: bits out, each channel's compare as its bit (vectorized over
channels) and a word's 32 folded by ORs of halves; codes out, the requantization vectorized over
channels. Positions split over cores when the layer's popcount words and positions reach
parallel_costs' thresholds. A layer of one output position splits its channel blocks over the
cores instead where its popcounts outweigh a launch (parallel_costs). Measured and not kept: two output
positions per weight load, 1-8 accumulator vectors per broadcast word (no change: the vector
popcount bounds the loop).
"""
from __future__ import annotations

from tvm_deepchip.isa import IsaClass
from tvm_deepchip.parallel_costs import PARALLEL_MIN_POPCOUNT_STEPS, PARALLEL_MIN_POPCOUNT_WORDS, PARALLEL_MIN_POSITIONS
from tvm_deepchip.primitives import roles

from .common import _extent, _vectorize_crops, _work, loops_below


CHANNEL_VECTORS = 4  # accumulator vectors a tap's input word is broadcast to (fewer where Co has fewer)


WHOLE_POSITIONS = 4096  # binary_pack's planes: positions vectorized as one (larger maps: by native vectors)


def _lanes(isa: IsaClass, word_bytes: int = 4) -> int:
    return isa.vector_bytes // word_bytes  # words (uint32, or paired: uint64) per vector


def _word_bytes(sch, block) -> int:
    """Bytes of the words a popcount block sums (its accumulator's type: int32 popcounts of uint32
    words, int64 of paired ones: xnor_conv2d.paired)."""
    return int(sch.get(block).writes[0].source.dtype.bits) // 8


def schedule_xnor(sch, epilogue, knobs, isa: IsaClass):
    accs = roles.having(sch, sch.get_child_blocks(sch.get_sblock("root")), roles.ACCUMULATOR)  # none: binary_pack
    loops = sch.get_loops(epilogue)
    space = loops[:-1]  # the output position: (n, oy, ox) or n
    pos = sch.fuse(*space) if len(space) > 1 else space[0]
    words = sum(_work(sch, [a]) * _word_bytes(sch, a) // 4 for a in accs)  # in 32-bit words
    split_channels, outer = False, None
    if words >= PARALLEL_MIN_POPCOUNT_WORDS and _extent(sch, pos) >= PARALLEL_MIN_POSITIONS:
        outer, pos = sch.split(pos, [2, None])
        sch.parallel(outer)
    elif _extent(sch, pos) == 1:  # one position: the cores take channel blocks where the popcounts pay a launch
        # (only there: under a loop over positions, the channel blocks' parallel loop would launch
        # once a position, ResNet-44 BNN's 8x8 layer3.0.conv1 on AVX2 took 120 us)
        split_channels = words // _lanes(isa) * isa.popcount_steps >= PARALLEL_MIN_POPCOUNT_STEPS
    _epilogue(sch, epilogue, pos, isa)  # (first: the bit values, which read the popcounts, move under pos)
    for pcs in accs:
        sch.compute_at(pcs, pos)
        _popcounts(sch, pcs, loops_below(sch, pcs, pos), knobs, isa, split_channels)
    _vectorize_crops(sch, sch.get_consumers(epilogue))  # the NHWC -> NCHW copy (and a residual add after it)
    for packed in roles.having(sch, sch.get_child_blocks(sch.get_sblock("root")), roles.LAYOUT):
        _pack_rows(sch, packed, outer)
    return sch


def _pack_rows(sch, block, outer) -> None:
    """The words a kernel packs from 8-bit codes (xnor_conv2d.compute_binarized): on two cores
    each core packs the rows its positions read, on its own stack; along a row's positions
    vectorized (the codes of a channel are contiguous there)."""
    if outer is not None:
        sch.compute_at(block, outer)
        sch.set_scope(block, 0, "local")
    loops = sch.get_loops(block) if outer is None else loops_below(sch, block, outer)
    words = int(sch.get(block).writes[0].source.shape[-1])  # (0.27: .source)
    if words > 1:  # [.., y, x, v] -> [.., y, v (unrolled: its channels constants), x]
        sch.reorder(loops[-1], loops[-2])
        sch.unroll(loops[-1])
        sch.vectorize(loops[-2])
    else:  # [.., y, x, v of extent 1] (after compute_at, [.., y, x]: a loop of extent 1 is gone)
        sch.vectorize(sch.fuse(*loops[-2:]) if _extent(sch, loops[-1]) == 1 else loops[-1])


def _popcounts(sch, pcs, own: list, knobs, isa: IsaClass, split_channels: bool) -> None:
    """After compute_at (`own`: its loops below the position): [channel, *reductions] -> [channel block,
    *reductions, blocks, lanes] (reduction loops of extent 1 may be gone), the channel blocks
    over the cores where `split_channels`."""
    c, *red = own
    lanes = _lanes(isa, _word_bytes(sch, pcs))
    cp = _extent(sch, c)
    vectors = cp // lanes if cp % lanes == 0 else 1
    fits = [b for b in (1, 2, 4, 8) if vectors % b == 0]
    blocks = knobs.choice(sch, fits, max(b for b in fits if b <= CHANNEL_VECTORS))
    cb, bi, li = sch.split(c, [None, blocks, lanes if cp % lanes == 0 else cp])
    sch.reorder(cb, *red, bi, li)
    if split_channels and _extent(sch, cb) > 1:
        sch.parallel(cb)
    sch.unroll(bi)
    sch.vectorize(li)
    # the block's accumulators in a local array indexed by constants only (unrolled blocks, vector
    # lanes): LLVM keeps them in registers across the taps, stored once per block
    copy = sch.cache_write(pcs, 0, "local")
    sch.reverse_compute_at(copy, cb)
    sch.vectorize(sch.get_loops(copy)[-1])
    sch.decompose_reduction(pcs, red[0] if red else bi)  # (vectorized first: TVM checks a reduction block has its init)


def _epilogue(sch, epilogue, pos, isa: IsaClass) -> None:
    """Bits: each channel's bit in place, vectorized over channels, at the position (the words'
    ORs follow); codes: vectorized over channels."""
    lanes = _lanes(isa)
    stages = roles.having(sch, sch.get_child_blocks(sch.get_sblock("root")), roles.BIT_VALUES)
    for i, stage in reversed(list(enumerate(stages))):  # consumers first: each moves under pos before its producer
        sch.compute_at(stage, pos)
        inner = sch.get_loops(stage)[-1]
        _, li = sch.split(inner, [None, lanes]) if _extent(sch, inner) > lanes else (None, inner)
        sch.vectorize(li)
        if i == 0:
            # the bits stage's words and vectors unrolled: each vector's channel indices are then
            # constants, so the clamp of a last word's channels past Co (binary_bits.te_pack)
            # simplifies away instead of making every vector a gather (ResNet-44 BNN's 16-channel
            # layers: 9.6 -> 3.0 us, AVX-512 build)
            for loop in loops_below(sch, stage, pos)[:-1]:
                sch.unroll(loop)
    if stages:
        return
    inner = sch.get_loops(epilogue)[-1]
    if _extent(sch, inner) % lanes == 0:
        _, li = sch.split(inner, [None, lanes])
        sch.vectorize(li)


def schedule_pack(sch, epilogue, knobs, isa: IsaClass):
    """binary_pack's packing: NCHW input as bit planes (a sum over 32 channels, vectorized along
    positions, then the copy into [N, H, W, Cw]); a 2-D input as the XNOR epilogue's packing."""
    (planes,) = roles.having(sch, sch.get_child_blocks(sch.get_sblock("root")), roles.BIT_VALUES)[:1]
    loops = sch.get_loops(planes)
    if len(loops) != 5:  # not the planes form
        return schedule_xnor(sch, epilogue, knobs, isa)
    n, v, y, x, j = loops
    p = sch.fuse(y, x)
    sch.reorder(n, v, j, p)
    lanes = _lanes(isa)
    # all positions as one vector (LLVM cuts it into native ones): its lanes' (y, x) are the
    # input's consecutive codes. Cut into vectors of `lanes`, a vector's (y, x) were div/mod of
    # its lanes, which LLVM gathered byte by byte: ResNet-44's 16-channel 32x32 pack 14.6 ->
    # 0.75 us, SVHN ConvNet's 48-channel 36x36 55 -> 2.7 (AVX-512 build, one core)
    if _extent(sch, p) > WHOLE_POSITIONS and _extent(sch, p) % lanes == 0:
        _, p = sch.split(p, [None, lanes])
    sch.vectorize(p)
    sch.decompose_reduction(planes, j)
    return sch
