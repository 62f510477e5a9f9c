"""Schedule of the dot-product dense layer (primitives/int8_dense).

acc[n, c] is reduced over (q, j < G) in steps of 16 channels x G input codes. A register tile of
Rc blocks of 16 channels: per step, one input group is broadcast once and multiplied with Rc
blocks of consecutive weights. With a tensor intrinsic of the channels shape
(schedules/dot_intrinsics.py: VNNI `vpdpbusd`, `vpmaddwd`, ARM `sdot`) each (lanes, G) step is one
instruction; without, the 16 channels are a vector and the G products are unrolled. The epilogue
of the tile follows at once along the channels, then the crop of the padded channels.
"""
from __future__ import annotations

from tvm_deepchip.primitives import roles
from tvm_deepchip.primitives.int8_dense import CHANNELS_PER_STEP  # (it pads channels to whole steps)

from .common import _accumulators, _divisors, _extent, _finish_crop
from .dot_intrinsics import finish_pairs, finish_tile, widen_chunks
from .dot_product import worth_two_cores


def schedule_dense_dot(sch, epilogue, knobs, intrinsics: dict, cls, pair_intrinsic=None):
    """`intrinsics`: (operand dtype, weight dtype) -> (tensor intrinsic of the channels shape,
    lanes it covers) the target has; `cls`: the target's isa.IsaClass (its registers size the
    default tile); `pair_intrinsic`: the same of the int16 pair sums (primitives/pair_sums), where
    the kernel has them. The accumulator may hold several planes per output channel
    (ternary_dense_dot: two, the planes of each block of 16 channels adjacent): the tile then
    spans them all."""
    (acc,) = _accumulators(sch, epilogue)
    pairs = roles.having(sch, sch.get_producers(acc), roles.PAIR_SUMS)
    products = pairs[0] if pairs else acc  # the block of the dot products
    (layout,) = roles.having(sch, sch.get_producers(products), roles.LAYOUT)
    operand = str(sch.get(layout).writes[0].source.dtype)
    intrin = pair_intrinsic if pairs else intrinsics.get((operand, _weight_dtype(sch, acc)))
    n, c = sch.get_loops(epilogue)
    planes = _extent(sch, sch.get_loops(acc)[1]) // _extent(sch, c)
    blocks = _extent(sch, c) // CHANNELS_PER_STEP
    per_block = planes * CHANNELS_PER_STEP * 4 // cls.vector_bytes  # registers holding its int32 accumulators
    rc_cands = _divisors(blocks, [8, 4, 2])
    fits = [r for r in rc_cands if r * per_block <= cls.vector_registers // 2] or [rc_cands[-1]]
    rc = knobs.choice(sch, rc_cands, max(fits))
    co, cr, ci = sch.split(c, [None, rc, CHANNELS_PER_STEP])
    outer = sch.fuse(n, co)
    if worth_two_cores(sch, products, intrin, cls):
        sch.parallel(outer)
    sch.compute_at(acc, outer)
    if pairs:
        _pair_tile(sch, acc, pairs[0], intrin, _extent(sch, cr) * planes)
    else:
        _register_tile(sch, acc, intrin, _extent(sch, cr) * planes)  # (rc may be a sampled decision)
    sch.vectorize(ci)
    _finish_layout(sch, layout)
    _finish_crop(sch, epilogue)
    return sch


def _weight_dtype(sch, acc) -> str:
    """The type of the weights acc reads (the [Co/16, K/G, 16, G] buffer of its reads)."""
    (w,) = [r.source for r in sch.get(acc).reads if len(r.source.shape) == 4]
    return str(w.dtype)


def _register_tile(sch, acc, intrin, rc: int):
    """acc loops after compute_at: [outer], c (rc x 16), q, j -> q, [block], lane, j."""
    c, q, j = sch.get_loops(acc)[1:]
    tile, lane = [], c
    if rc > 1:
        block, lane = sch.split(c, [rc, CHANNELS_PER_STEP])
        tile.append(block)
    if intrin is None:  # channels as the vector, the G products of a step unrolled
        sch.reorder(q, *tile, j, lane)
        sch.vectorize(lane)
        sch.unroll(j)
    else:
        sch.reorder(q, *tile, lane, j)
    init = sch.decompose_reduction(acc, q)  # zero the tile before the steps
    finish_tile(sch, init, tile, lane, intrin, CHANNELS_PER_STEP)


def _pair_tile(sch, acc, pairs, intrin, rc: int):
    """The int16 pair sums (primitives/pair_sums): acc's loops after compute_at, [outer], c
    (rc x 16), k, h (k gone where one chunk) -> k, [block], h, lane; each chunk's pair sums
    computed under k (b, [block], lane, h, j: the intrinsic's (lane, h, j)), then widened into
    acc along the lanes."""
    chunks = int(sch.get(pairs).writes[0].source.shape[1])  # [N, chunk, channel, pair]
    outer, c, *rest = sch.get_loops(acc)
    k = [rest.pop(0)] if chunks > 1 else []
    (h,) = rest
    tile, lane = _blocks(sch, c, rc)
    widen_chunks(sch, acc, pairs, outer, k, tile, h, lane)
    pc, ph, *groups, j = sch.get_loops(pairs)[1 + len(k):]  # c, h, then b (where over 1) and j
    ptile, plane = _blocks(sch, pc, rc)
    finish_pairs(sch, pairs, groups, ptile, plane, ph, j, intrin, CHANNELS_PER_STEP)


def _blocks(sch, c, rc: int) -> tuple[list, object]:
    """Loop `c` over rc blocks of 16 channels: ([the block loop] where rc > 1, the lane loop)."""
    if rc == 1:
        return [], c
    block, lane = sch.split(c, [rc, CHANNELS_PER_STEP])
    return [block], lane


def _finish_layout(sch, layout):
    """The grouped input codes [N, K/G, G]: a short cast (and shift) pass, vectorized."""
    loops = sch.get_loops(layout)
    fused = sch.fuse(*loops[1:])
    if _extent(sch, fused) % 16 == 0:
        _, inner = sch.split(fused, [None, 16])
        sch.vectorize(inner)
