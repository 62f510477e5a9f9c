"""Schedule of the dot-product convolution (primitives/int8_conv2d).

acc[n, c, p] is reduced over (taps..., j < 4) in steps of 16 positions x 4 input channels. A
register tile of Rc channels x Rp vectors of 16 positions: per tap, Rp input vectors (64
consecutive bytes each) are loaded once and multiplied with Rc broadcast weight quadruples.
With a tensor intrinsic (x86 VNNI `vpdpbusd`) each (16, 4) step is that one instruction;
without, the 16 positions are a vector and the 4 products are unrolled. The epilogue of the
tile follows at once, along contiguous positions (no transpose), then the crop.
"""
from __future__ import annotations

import math

from tvm.tirx import IterVar

from tvm_deepchip.primitives import roles

from .common import (PARALLEL_MIN_DOT_OPS, PARALLEL_MIN_WORK, SCALAR_COST, _accumulators, _divisors, _extent,
                     _finish_crop, _work, split_grouped_flat)
from .dot_intrinsics import finish_pairs, finish_tile, ops_per_mac, widen_chunks

POSITIONS_PER_STEP = 16  # = primitives.int8_conv2d.POSITIONS_PER_STEP, which pads positions to whole steps
# Dot products run on two cores from PARALLEL_MIN_DOT_OPS instructions (tvm_deepchip/
# parallel_costs.py, with its measurements). The AVX2 class splits from 5 K: where its 256-bit
# instructions run as two 128-bit halves (Zen 1, an AVX2-only CPU) one takes ~0.65 ns (the digits
# model's conv1, 11.5 K of them: 7.5 us on one core), a vpdpbusd 0.45 ns on a znver5 (SVHN's
# conv1 in parallel_costs' measurements: 110 K, 50 us). Measured (AMD EPYC
# znver1, the digits model (its conv1: 1 -> 48 channels, 8x8), whole model in one process, both
# builds taking turns, 10 x 200 runs): 0.959x the time (blocks 0.943-0.962), and 0.973x (0.949-
# 0.980) in a second run. The other ternary bench models have no AVX2 layer of 5-20 K (LeNet's
# conv1 35 K, ResNet-44's 61 K, SVHN ConvNet's 645 K). The int8 dense (dense_dot) splits by the
# same count, where it split from 1 M multiply-adds: AVX2 znver1, the same A/B, the MLP (its
# 784 -> 512 layer, 50 K instructions) 0.815x the time (blocks 0.810-0.821), the digits model (its
# conv7 in the dot form, 12 K) 0.954x / 0.977x / 0.956x in three runs (~68 -> ~65 us).
PARALLEL_MIN_DOT_OPS_BY_CLASS = {"x86-avx2": 5_000}


def parallel_min_dot_ops(cls) -> int:
    """The dot-product instructions from which a layer of ISA class `cls` runs on two cores."""
    return PARALLEL_MIN_DOT_OPS_BY_CLASS.get(cls.name, PARALLEL_MIN_DOT_OPS)


def worth_two_cores(sch, acc, intrin, cls) -> bool:
    """Whether accumulator `acc`'s dot products (through tensor intrinsic `intrin`, or None) are
    enough vector instructions for two cores (the int8 conv and the int8 dense alike). Without
    an intrinsic a 64-MAC step is ~8 vector ops (4 products, their widening and adds)."""
    ops = _work(sch, [acc]) * (ops_per_mac(intrin[0]) if intrin else 8 / 64)
    return ops >= parallel_min_dot_ops(cls)


def schedule_dot(sch, epilogue, knobs, intrinsics: dict, cls, pair_intrinsic=None):
    """`intrinsics`: (operand dtype, weight dtype) -> (tensor intrinsic, positions it covers) the
    target has; `cls`: the target's isa.IsaClass (register file and width size the default tile);
    `pair_intrinsic`: the same of the int16 pair sums (primitives/pair_sums), where the kernel
    has them."""
    (acc,) = _accumulators(sch, epilogue)
    pairs = roles.having(sch, sch.get_producers(acc), roles.PAIR_SUMS)
    products = pairs[0] if pairs else acc  # the block of the dot products
    intrin = pair_intrinsic if pairs else intrinsics.get(_dot_dtypes(sch, acc))
    n, c, p = sch.get_loops(epilogue)
    rc_cands = _channel_tiles(_extent(sch, c), cls)
    rp_cands = _position_tiles(_extent(sch, p) // POSITIONS_PER_STEP)
    rc_default, rp_default = _default_tile(rc_cands, rp_cands, cls, bool(pairs), _taps(sch, products))
    rc = knobs.choice(sch, rc_cands, rc_default)
    rp = knobs.choice(sch, rp_cands, rp_default)
    co, ci = sch.split(c, [None, rc])
    po, pv, pl = sch.split(p, [None, rp, POSITIONS_PER_STEP])
    sch.reorder(n, po, co, ci, pv, pl)  # positions outermost: a core's positions are its layout rows
    outer = sch.fuse(n, po, co)
    if worth_two_cores(sch, products, intrin, cls) or _layout_splits_rows(sch):
        sch.parallel(outer)
    sch.compute_at(acc, outer)
    _finish_flat4(sch, products)
    if pairs:
        _pair_tile(sch, acc, pairs[0], intrin, [_extent(sch, ci), _extent(sch, pv)])
    else:
        _register_tile(sch, acc, intrin, [_extent(sch, ci), _extent(sch, pv)])
    sch.vectorize(pl)  # one vector of int32 a step (its float64 epilogue: two zmm or four ymm)
    _finish_output(sch, epilogue)
    return sch


def _channel_tiles(channels: int, cls) -> list:
    """Channels a register tile may take: 8, 6, 4, 3, 2 where they divide the count (else 1); and
    1 on 16-register x86, whose positions-first tiles take it (the VNNI intrinsic does not
    tensorize a tile of one channel)."""
    tiles = _divisors(channels, [8, 6, 4, 3, 2])
    return tiles + [1] if _narrow_x86(cls) and 1 not in tiles else tiles


def _narrow_x86(cls) -> bool:
    return cls.is_x86 and cls.vector_registers < 32


def _taps(sch, block) -> int:
    """The steps a tile's reduction takes: the product of `block`'s reduction extents but the last
    (the intrinsic's channels of a step)."""
    doms = [int(v.dom.extent) for v in sch.get(block).iter_vars if v.iter_type == IterVar.CommReduce]
    return math.prod(doms[:-1])


def _position_tiles(steps: int) -> list:
    """Vectors of 16 positions a register tile may take: 2 or 4, or, for an odd step count
    (primitives/int8_conv2d.TILE_STEPS left it unpadded), 3."""
    return _divisors(steps, [2, 4, 1] if steps % 2 == 0 else [3, 1])


def _finish_output(sch, epilogue):
    """The crop after the epilogue, or none: where the flat positions are exactly the output's
    (Wq = Wo, no positions past the last row: a first layer with its kernel columns folded), the
    epilogue writes the output itself (the crop was a copy of every code, on one core after the
    parallel tiles)."""
    (crop,) = sch.get_consumers(epilogue)
    if not roles.having(sch, sch.get_consumers(crop), roles.RESIDUAL) and _size(sch, epilogue) == _size(sch, crop):
        sch.reverse_compute_inline(crop)
    else:
        _finish_crop(sch, epilogue)


def _size(sch, block) -> int:
    """Elements of the buffer `block` writes."""
    return math.prod(int(d) for d in sch.get(block).writes[0].source.shape)


# The share of the vector registers a tile's int32 accumulators may take: x86 measured (AMD EPYC
# znver5, SVHN ConvNet's 8-bit convs (its BWN form) and AlexNet's conv1, fastest of 4 x 5 x 20 runs
# each). AVX-512 (32 registers): 12 accumulators where the channel and position counts give such a
# tile (SVHN conv1, 48 channels grouped by kernel columns: 9.5-9.7 us at 6x2 / 3x4, 11.2-11.7 at
# 4x4 / 8x2), else 16 rather than 8 (AlexNet conv1 163-164 us against 176-178, SVHN conv4/5 6.6 /
# 11.7 against 7.2 / 12.8, its 18x18 convs even). (AVX2 (16) took 3/8 too, channels first: SVHN
# conv1 39 us at 3x1, 45 at 4x1, 56 at 2x2 on a znver5; now ACC_SHARE_NARROW below.) With 8 among
# the channel counts the 7x7-to-5x5 conv6 runs 8x1: 14.9 -> 10.4 us. aarch64 keeps half (QEMU
# only: not re-measured).
ACC_SHARE_X86, ACC_SHARE_ARM = 3 / 8, 1 / 2
# 16-register x86 (AVX2): half the registers, positions first while a tile's inputs over its taps
# stay within TILE_INPUT_BYTES (a quarter of a 32 KB L1), then channels. Measured (AMD EPYC
# znver4, AVX2 build, each layer alone, both tiles' kernels in turns, 25-30 rounds, medians of
# the paired ratios against the 3/8 share's channels-first tile): AlexNet's conv1 (204 steps of
# 64 bytes a vector of positions: 13 KB, so one vector) 4x1 0.86x (2x2 1.07x, 1x2 1.60x);
# ResNet-44's conv1 1x4 0.73x (2x1 before); LeNet's 1x4 0.84x (3x1); the digits model's 0.99x;
# SVHN ConvNet's 1x3 0.92x (3x1; 4x1 1.03x).
ACC_SHARE_NARROW = 1 / 2
STEP_BYTES = 64  # the input bytes a step of 16 positions reads (4 uint8 or 2 int16 codes each)
TILE_INPUT_BYTES = 8 * 1024
ACC_SHARE_WIDE_FALLBACK = 1 / 2  # 32-register x86 (AVX-512) where 3/8 gives only a quarter or less
# int16 pair sums (primitives/pair_sums): half. AMD EPYC znver1, AVX2 build, SVHN ConvNet BWN's conv3
# (64 -> 64, 18x18) 283 us at 2x1 (3/8), 273 at 4x1, 279 at 8x1; its conv6 (7x7 -> 5x5) 132 / 126 / 138
# (AVX-512BW without VNNI: not measured, no such machine).
ACC_SHARE_PAIRS = 1 / 2


def _largest_tile(rc_cands, rp_cands, per_vector: int, registers: float) -> tuple[int, int]:
    """The largest tile whose accumulators fit in `registers`; of equal ones, the fewest loads a
    step (Rc broadcasts + Rp vectors)."""
    fits = [(rc, rp) for rc in rc_cands for rp in rp_cands if rc * rp * per_vector <= registers]
    return max(fits, key=lambda t: (t[0] * t[1], -(t[0] + t[1])), default=(rc_cands[-1], rp_cands[-1]))


def _positions_first(rc_cands, rp_cands, per_vector: int, registers: float, taps: int) -> tuple[int, int]:
    """The most vectors of positions whose accumulators fit in `registers` and whose inputs, over
    the `taps` steps, take at most TILE_INPUT_BYTES (the channel tiles after it read them again
    from L1), then the most channels that fit beside them."""
    rp = max([rp for rp in rp_cands if rp * per_vector <= registers and rp * taps * STEP_BYTES <= TILE_INPUT_BYTES],
             default=min(rp_cands))
    return max([rc for rc in rc_cands if rc * rp * per_vector <= registers], default=min(rc_cands)), rp


def _default_tile(rc_cands, rp_cands, cls, pairs: bool = False, taps: int = 1) -> tuple[int, int]:
    """The register tile (Rc channels x Rp vectors of 16 positions) whose int32 accumulators take
    at most ACC_SHARE_X86 (ACC_SHARE_ARM) of the vector registers, the rest holding the inputs of
    the taps LLVM interleaves and the weight broadcasts; on 32-register x86, half where that
    share's best tile would take a quarter or less; on 16-register x86, half, positions first
    (_positions_first; `taps`: the steps of the tile's reduction)."""
    per_vector = POSITIONS_PER_STEP * 4 // cls.vector_bytes  # registers holding 16 int32 accumulators
    regs = cls.vector_registers
    if pairs:  # only the int16 pair sums (as many registers) are live across the taps
        return _largest_tile(rc_cands, rp_cands, per_vector, regs * ACC_SHARE_PAIRS)
    if not cls.is_x86:
        return _largest_tile(rc_cands, rp_cands, per_vector, regs * ACC_SHARE_ARM)
    if _narrow_x86(cls):
        return _positions_first(rc_cands, rp_cands, per_vector, regs * ACC_SHARE_NARROW, taps)
    rc, rp = _largest_tile(rc_cands, rp_cands, per_vector, regs * ACC_SHARE_X86)
    if regs >= 32 and rc * rp * per_vector <= regs / 4:
        rc, rp = _largest_tile(rc_cands, rp_cands, per_vector, regs * ACC_SHARE_WIDE_FALLBACK)
    return rc, rp


def _layout_block(sch):
    """The grouped flat input [N, L, 4] the dot products read (conv_layout.te_flat, or grouped_layout's
    te.extern copy, whose block TVM gives no read/write regions: found by role, not dataflow)."""
    (prod,) = roles.having(sch, roles.top_blocks(sch), roles.LAYOUT)
    return prod


def _layout_splits_rows(sch) -> bool:
    """Whether the layout copy splits its rows over the cores (grouped_layout.splits_rows): the
    positions are then split too, each core's the rows it wrote. (Positions, not channels, are
    split anyway: the dot products of a core read half the layout. Measured, AMD EPYC znver4,
    AVX-512 VNNI build, one layer, both forms taking turns: AlexNet's conv1 0.85x the time, SVHN
    ConvNet's 0.88x, its BWN form's 8-bit convs 0.99-1.01x, ResNet-44 BWN's 0.93-0.94x.)"""
    return int(sch.get(_layout_block(sch)).annotations.get(roles.ROWS_SPLIT_KEY, 0)) == 1


def _dot_dtypes(sch, acc) -> tuple[str, str]:
    """(the input codes' type, the weights' type) of the dot product: of the buffers acc reads
    other than its own, the grouped flat layout [N, L, group] and the weights (7 axes)."""
    own = sch.get(acc).writes[0].source
    reads = [r.source for r in sch.get(acc).reads if not r.source.same_as(own)]
    (layout,) = [b for b in reads if len(b.shape) == 3]
    (weights,) = [b for b in reads if len(b.shape) == 7]
    return str(layout.dtype), str(weights.dtype)


def _register_tile(sch, acc, intrin, tile_extents):
    """acc loops after compute_at: [outer], c, p, taps..., j (one loop per block variable;
    loops of extent 1 are gone) -> taps..., c, p // 16, lane, j."""
    rc, rp = tile_extents
    rest = sch.get_loops(acc)[1:]
    tile = [rest.pop(0)] if rc > 1 else []
    p, *taps, j = rest
    if rp > 1:
        pv, lane = sch.split(p, [rp, POSITIONS_PER_STEP])
        tile.append(pv)
    else:
        lane = p
    if intrin is None:  # positions as the vector, the 4 products of a step unrolled
        sch.reorder(*taps, *tile, j, lane)
        sch.vectorize(lane)  # (before the init is split off: vectorize needs one writer)
        sch.unroll(j)
    else:
        sch.reorder(*taps, *tile, lane, j)
    init = sch.decompose_reduction(acc, sch.get_loops(acc)[1])  # zero the tile before the taps
    finish_tile(sch, init, tile, lane, intrin, POSITIONS_PER_STEP)


def _pair_tile(sch, acc, pairs, intrin, tile_extents):
    """The register tile of int16 pair sums (primitives/pair_sums). acc's loops after compute_at,
    [outer], c, p, k, h (loops of extent 1 are gone) -> k, c, p // 16, h, lane: each chunk k's
    pair sums computed under k (taps..., c, p // 16, lane, h, j: the intrinsic's (lane, h, j)),
    then widened into acc along the lanes."""
    rc, rp = tile_extents
    chunks = int(sch.get(pairs).writes[0].source.shape[2])
    outer, *rest = sch.get_loops(acc)
    c = [rest.pop(0)] if rc > 1 else []
    p = rest.pop(0)
    k = [rest.pop(0)] if chunks > 1 else []
    (h,) = rest
    pv, lane = sch.split(p, [rp, POSITIONS_PER_STEP]) if rp > 1 else (None, p)
    widen_chunks(sch, acc, pairs, outer, k, c + ([pv] if pv is not None else []), h, lane)
    inner = sch.get_loops(pairs)[1 + len(k):]  # c (where rc > 1), p, h, then the reduction's
    pc, pp, ph, *taps, j = inner if rc > 1 else [None, *inner]
    ppv, plane = sch.split(pp, [rp, POSITIONS_PER_STEP]) if rp > 1 else (None, pp)
    ptile = [lp for lp in (pc, ppv) if lp is not None]
    finish_pairs(sch, pairs, taps, ptile, plane, ph, j, intrin, POSITIONS_PER_STEP)


def _finish_flat4(sch, acc):
    """The grouped flat input [N, L, 4]: loops (plane, y, x*4) without div/mod, vectorized (a
    te.extern copy, primitives/grouped_layout, is its own schedule)."""
    prod = _layout_block(sch)
    if not sch.get_loops(prod):
        return
    work = _work(sch, [prod])
    n, plane, vector = split_grouped_flat(sch, prod)
    if work * SCALAR_COST >= PARALLEL_MIN_WORK:  # a byte gather per lane
        sch.parallel(sch.fuse(n, plane))
    sch.vectorize(vector)
