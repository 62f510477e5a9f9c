"""Ternary conv2d over delta lists: 8-bit relative indices, decoded per channel, no multiply.

A channel's taps are numbered k in conv_layout's phase order [Ci * sh * sw, KHq, KWq], with the
kernel's extents padded to powers of two (KHp, KWp) so that k splits into its plane, row and
column by shifts and masks; its lists hold the gaps between taps (delta_lists). The walk
(delta_walk) decodes a list into flat tap offsets once, then adds one input vector per tap over
consecutive output positions, as the sparse form does, but reads one byte a non-zero weight
instead of a padded uint16 row and row tables:

    acc_p[c, p] = sum over c's +1 taps of xf[p + offset(k)]        (acc_n likewise)
    offset(k)   = (k >> log2(KHp*KWp)) * plane + ((k >> log2 KWp) & (KHp-1)) * Wq + (k & (KWp-1))

(The padding stretches the gaps by KHp*KWp / (KHq*KWq), 1.8x for 3x3 kernels: a gap then
needs an escape entry above 255 / 1.8 = 142 taps, 6 in 10,000 entries at 90% zeros. A division
by 9 and by 3 per entry, the unpadded form, took most of a small layer's time.)
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..formats import Format
from ..parallel_costs import (CHANNEL_SPLIT_SHARE, PARALLEL_MIN_GATHERS, PARALLEL_MIN_LANES, PARALLEL_MIN_ROW_LANES,
                              ROW_PARTS)
from . import column_lists, column_walk, conv_layout, int8_add, requantize, requantize_pairs
from .conv_layout import ConvGeometry, acc_dtype, int16_taps, np_flat, space, te_flat, te_output
from .delta_lists import CHANNEL_BLOCK, DeltaLists, np_signed_sums
from .delta_rows import TaskSplit
from .delta_walk import Finish, Walk, point_lists, te_walk
from .dense_layout import te_slotted
from .record import Primitive, Site, rule_of

STEM = "ternary_conv2d_delta"
RULE = rule_of(STEM)
# A position step holds as many accumulator registers as fit beside the loads (half the register
# file), at most STEP_VECTORS: each list's tap loop then runs as few times as it can. Its trip
# count is the list's length, which differs from list to list; in a network the branch predictor
# cannot learn 45 layers' counts, and one mispredicted loop exit per list and step cost 18% of
# ResNet-44's time with two-register steps (all layers round-robin, Intel Xeon, AVX-512). Measured
# on whole ResNet-44 builds against the index rows (2 threads, in turns, same machine): steps of
# 4 ymm on AVX2 0.91x, 8 ymm 0.99x; 8 zmm on AVX-512 1.00x, 16 zmm 0.34x (LLVM spills).
REGISTER_SHARE = 2
STEP_VECTORS = 8
MIN_PART_BYTES = 16  # the narrowest vector a step's part uses (xmm, NEON's q registers)
# A 16-register file (AVX2) also takes the last whole step and the rest in one walk where their
# accumulators take at most MERGED_STEP_REGISTERS (the taps' vpaddw read their input from memory:
# no register for it), as the part loops of one step: each list's taps are then walked once less.
# AlexNet's 13x13 convs (200 positions: 8 ymm, then 4 ymm and an xmm) walk once, not twice.
# Measured (AMD EPYC znver4, AVX2 build, each layer alone, both forms in turns, 20 rounds, medians
# of the paired ratios): AlexNet conv3 / conv4 / conv5 0.995x / 0.969x / 0.985x the time,
# ResNet-44's layer1 convs 0.979x: a little, in the direction the walks say.
MERGED_STEP_REGISTERS = {16: 13}


def _bits(n: int) -> int:
    """log2 of the power of two at or above n."""
    return max(int(n) - 1, 0).bit_length()


# Kernel columns unfolded into planes (conv_layout.unfolded) where the vector adds the walk saves
# (the border columns of every row no longer walked) come to at least UNFOLD_COPY_COST times what
# the wider copy adds, both in vectors of UNFOLD_LANES int16 (a ymm: AVX2's, and the half of a
# zmm a 256-bit pipe runs), a copied row costing COPY_ROW_VECTORS more than its vectors (its
# test, its padding columns, the loop). Measured (AMD EPYC znver4, each layer alone, both forms
# in turns, medians of paired ratios), AVX2 / AVX-512 VNNI build: SVHN ConvNet's conv6 (a 5x5
# output of 7-wide rows: 33 flat positions, 25 unfolded; 2.7 by this rule) 0.94x / 0.84x the
# time; its conv3 (18x18, 0.7) 1.38x / 1.14x, conv2 (reading its pool's input, 0.7) 1.32x /
# 1.00x; ResNet-44's 8x8 layers (78 -> 64 positions, 1.0) 1.03-1.45x / 1.05-1.22x. And only
# layouts of at most UNFOLD_MAX_BYTES (as int16 codes, the widest: IsaClass.sparse_taps), about
# an L1 cache: AlexNet's 13x13 and 27x27 convs (5.1-7.7 by the rule; 219-523 KB unfolded, 3-5x
# the folded layout) ran 1.07-1.25x / 1.15-1.55x the time, 1.44x / 1.14x (conv2). (conv6: 27 KB.)
UNFOLD_LANES = 16
UNFOLD_COPY_COST = 2
COPY_ROW_VECTORS = 2
UNFOLD_MAX_BYTES = 32 * 1024


def geometry(layer, in_shape) -> ConvGeometry:
    """conv_layout.geometry, its kernel columns unfolded where that pays (UNFOLD_COPY_COST)."""
    geo = conv_layout.geometry(layer, in_shape)
    wide = conv_layout.unfolded(geo)
    if wide is None or _linear(geo) or 2 * wide.image > UNFOLD_MAX_BYTES:
        return geo
    saved = int(np.count_nonzero(layer.codes)) * (_walk_vectors(geo) - _walk_vectors(wide))
    return wide if saved >= UNFOLD_COPY_COST * (_copy_vectors(wide) - _copy_vectors(geo)) else geo


def _walk_vectors(geo: ConvGeometry) -> int:
    """Vectors (UNFOLD_LANES) a list's tap adds over an image's walked positions."""
    return -(-walked(geo.ho, geo, "int16") // UNFOLD_LANES)


def _copy_vectors(geo: ConvGeometry) -> int:
    """The cost of an image's layout copy in vectors (UNFOLD_LANES): each row's, and its overhead."""
    return geo.planes * geo.hq * (-(-geo.wq // UNFOLD_LANES) + COPY_ROW_VECTORS)


def _linear(geo: ConvGeometry) -> bool:
    """One output position whose kernel covers the whole (phase) plane: a dense layer over the
    layout, where tap k of the unpadded phase order reads offset k itself (delta_walk's
    pointwise form, over the slotted copy of the layout: delta_lists.slotted). Other one-position convs walk as a 1x1 spatial output."""
    return geo.ho * geo.wo == 1 and not geo.flat and (geo.khq, geo.kwq) == (geo.hq, geo.wq)


def _by_input(geo: ConvGeometry) -> bool:
    """A linear conv whose taps are its NCHW input's own order (no padding, stride, step): the
    column lists' walk (column_lists) reads the input as it is."""
    return _linear(geo) and geo.pad == (0, 0, 0, 0) and geo.step == 1 and (geo.sh, geo.sw) == (1, 1)


def pack(layer, geo: ConvGeometry, operand=None):
    if _linear(geo):
        codes2 = geo.phase_kernel(layer.codes).reshape(geo.co, -1)
        if not _by_input(geo):
            return point_lists(codes2)
        return column_lists.pick(codes2, layer, lambda: point_lists(codes2), geo.n)
    kh, kw = 1 << _bits(geo.khq), 1 << _bits(geo.kwq)
    w = geo.phase_kernel(layer.codes).reshape(geo.co, geo.planes, geo.khq, geo.kwq)
    w = np.pad(w, ((0, 0), (0, 0), (0, kh - geo.khq), (0, kw - geo.kwq)))
    return DeltaLists.of(w.reshape(geo.co, -1))


def walked_positions(geo: ConvGeometry) -> int:
    """The positions per image each list is walked over, as format_rule weighs them: a flat
    output's whole rows, border columns included (the walk itself stops at the last valid
    column: walked); 1: the pointwise form."""
    if _linear(geo):
        return 1
    return geo.ho * geo.wq if geo.flat else geo.ho * geo.wo


def tap_offset(geo: ConvGeometry, k):
    """Flat input offset of tap k of the padded phase order (numpy arrays or TIR expressions)."""
    if _linear(geo):
        return k
    bh, bw = _bits(geo.khq), _bits(geo.kwq)
    return (k >> (bh + bw)) * geo.plane + ((k >> bw) & ((1 << bh) - 1)) * geo.wq + (k & ((1 << bw) - 1))


def steps(positions: int, vector_lanes: int, registers: int) -> tuple[int, int, tuple[int, ...]]:
    """(lanes, count, parts): `count` steps of `lanes` positions, the largest power-of-two number
    of vectors that fits in registers / REGISTER_SHARE, at most STEP_VECTORS, then one step of
    the rest in `parts`, power-of-two runs of lanes, largest first, each its own vector loop in
    that step (as narrow as the narrowest vector: 8 int16 lanes in an xmm). Every list is walked
    about positions / lanes times whatever the count's factors (1088 positions, 34 vectors of
    int16 on AVX-512: 4 steps of 8 vectors and one of 2, not 17 of 2); where the last whole step
    and the rest fit in one step's registers they are one step (ResNet-44's 8x8 maps, 80
    positions: 2 zmm and a ymm in one walk of the lists, where two walks added 2 and 1 zmm), or,
    on a 16-register file, where they take at most MERGED_STEP_REGISTERS accumulators. (One
    vector loop of any other number of vectors made LLVM split it badly: 3 zmm, or 10 registers
    ran ResNet-44 4x slower; the parts are power-of-two loops.)"""
    budget = min(max(registers // REGISTER_SHARE, 1), STEP_VECTORS)
    widest = vector_lanes << (budget.bit_length() - 1)
    lanes = min(1 << (positions.bit_length() - 1), widest)
    count, rest = divmod(positions, lanes)
    parts = []
    while rest:
        parts.append(1 << (rest.bit_length() - 1))
        rest -= parts[-1]
    merged = sum(-(-p // vector_lanes) for p in (lanes, *parts))  # registers of one walk of both
    if parts and (lanes + sum(parts) <= widest or merged <= MERGED_STEP_REGISTERS.get(registers, 0)):
        count, parts = count - 1, [lanes, *parts]
    return lanes, count, tuple(parts)


def walked(rows: int, geo: ConvGeometry, acc: str) -> int:
    """Flat positions a walk over `rows` output rows computes: up to the last row's last valid
    column (the border columns after it are never read), in whole narrowest vectors
    (MIN_PART_BYTES) of the accumulator type."""
    lanes = MIN_PART_BYTES * 8 // int(acc[3:])
    return -(-((rows - 1) * geo.wq + geo.wo) // lanes) * lanes


def task_split(geo: ConvGeometry, w: DeltaLists, in_dtype: str, vector: int, zp: int = 0,
               taps: str | None = None) -> TaskSplit | None:
    """The split of a flat conv (a strided one over its phase planes) into ROW_PARTS tasks
    (delta_rows), where it has the work for it: by whole output rows, or by channel blocks where
    a task's share of the lists over the whole output costs less than the rows' (a vector add per
    entry and vector of positions, about one op per entry to decode); None: one task (or the
    channel split of the shared layout, for the largest)."""
    if not geo.flat or geo.ho < ROW_PARTS:
        return None
    if not PARALLEL_MIN_ROW_LANES <= w.entries * geo.ho * geo.wq * geo.n < PARALLEL_MIN_LANES:
        return None
    dtype, acc = taps or in_dtype, acc_dtype(in_dtype, w.longest)
    whole = walked(geo.ho, geo, acc)
    rows = -(-geo.ho // ROW_PARTS)  # a height the tasks do not divide: the last has fewer rows
    by_rows = walked(rows, geo, acc) if (ROW_PARTS - 1) * rows < geo.ho else None
    if w.channels >= ROW_PARTS * CHANNEL_BLOCK:
        per_task = (-(-whole // vector) + 1) / ROW_PARTS  # per entry of the layer
        if by_rows is None or per_task < CHANNEL_SPLIT_SHARE * (-(-by_rows // vector) + 1):
            return TaskSplit(ROW_PARTS, geo.ho, geo, zp, dtype, whole, by_channels=True)
    return None if by_rows is None else TaskSplit(ROW_PARTS, rows, geo, zp, dtype, by_rows)


def walk_of(geo: ConvGeometry, w: DeltaLists, in_dtype: str, isa, zp: int = 0, taps: str | None = None) -> Walk:
    """The walk over this geometry's output positions: flat steps of up to a third of the
    register file (steps) over the whole output or over each task's (task_split), rows of
    a 2-D output, or one position (pointwise)."""
    lead, out = (geo.n, geo.co), space(geo)
    acc = acc_dtype(in_dtype, w.longest)
    offset = lambda k: tap_offset(geo, k)  # noqa: E731
    if _linear(geo):  # over te_slotted's copy of the image: pads and hops read its zero slots
        return Walk(lead, out, (), 1, acc, w.entries * geo.n >= PARALLEL_MIN_GATHERS, lambda k: k, 0)
    zero = geo.image  # the layout's zero tail: zero from every output position's base
    pairs = requantize_pairs.for_class(isa)  # the epilogue takes them where acc is int16
    chunk = int16_taps(in_dtype) if acc == "int32" else 0  # int16 partial sums of the taps
    parallel = w.entries * int(np.prod(out)) * geo.n >= PARALLEL_MIN_LANES  # vector lanes added
    vector = isa.vector_bytes * 8 // int(acc[3:])
    tasks = task_split(geo, w, in_dtype, vector, zp, taps)
    if tasks is not None:  # each task's flat positions, into its own buffer: (ho, wo) written by it
        lanes, count, tail = steps(tasks.positions, vector, isa.vector_registers)
        return Walk(lead, (geo.ho, geo.wo), (count,), lanes, acc, False, offset, zero, tail=tail,
                    base=lambda o, v: o[0] * lanes + v, out_index=lambda o, v: (o[0] * lanes + v,), chunk=chunk,
                    tasks=tasks, pairs=pairs)
    if geo.flat:  # the positions the crop reads, not out_flat's whole blocks
        # (an 8x8 output's 78 flat positions: 2 zmm and a ymm of int16 a tap, not 4 zmm)
        lanes, count, tail = steps(min(geo.out_flat, walked(geo.ho, geo, acc)), vector, isa.vector_registers)
        return Walk(lead, out, (count,), lanes, acc, parallel, offset, zero, tail=tail,
                    base=lambda o, v: o[0] * lanes + v, out_index=lambda o, v: (o[0] * lanes + v,), chunk=chunk, pairs=pairs)
    return Walk(lead, out, (geo.ho,), geo.wo, acc, parallel, offset, zero,
                base=lambda o, v: o[0] * geo.wq + v, out_index=lambda o, v: (o[0], v), chunk=chunk, pairs=pairs)


def int16_pairs(geo: ConvGeometry, w: DeltaLists, in_dtype: str) -> bool:
    """Whether the walk's accumulators are int16 (its epilogue can take them in pairs)."""
    return not _linear(geo) and acc_dtype(in_dtype, w.longest) == "int16"


def compute(x, w: DeltaLists, consts, site: Site):
    """TE definition. x: [N, Ci, H, W] 8-bit codes; w: the delta lists; consts: epilogue (applied
    inside the walk)."""
    geo = site.geo
    if isinstance(w, column_lists.ColumnLists):  # the inputs' lists, zeros skipped; the epilogue after
        return column_walk.te_layer(x, w, site, consts, geo.out_shape(), RULE)
    walk, finish = walk_of(geo, w, x.dtype, site.isa, site.zp, site.taps), Finish(site.epi, consts, RULE)
    if walk.tasks is not None:  # each task copies its rows and writes its outputs (delta_rows)
        return te_walk(x, w, walk, finish)
    if _linear(geo):  # scalar gather-adds into int32: no wider copy of the codes
        xf = te_slotted(te_flat(x, geo, site.zp), geo.image)
    else:
        xf = te_flat(x, geo, site.zp, widen=site.taps)
    return te_output(te_walk(xf, w, walk, finish), geo)


def compute_add(x, w: DeltaLists, consts, site: Site, other, add):
    """compute's output plus `other` (int8_add.AddConsts `add`): inside the walk's tasks where it
    splits by rows (each adds the rows it writes), else int8_add's stage after the crop."""
    walk = walk_of(site.geo, w, x.dtype, site.isa, site.zp, site.taps)
    if walk.tasks is None:
        return int8_add.compute(compute(x, w, consts, site), other, add)
    return te_walk(x, w, walk, Finish(site.epi, consts, RULE, residual=(other, add)))


def takes_pool(site: Site, w: DeltaLists, in_dtype: str) -> bool:
    """Whether the kernel can read the input of a max pool before it (compute_pooled): where its
    tasks copy their rows themselves (delta_rows), from an image read whole (no step)."""
    walk = walk_of(site.geo, w, in_dtype, site.isa, site.zp, site.taps)
    return walk.tasks is not None and site.geo.step == 1


def compute_pooled(x, w: DeltaLists, consts, site: Site, pool):
    """compute's output over x, the input of max pool `pool` (int8_max_pool.Pool) that gives the
    conv its input: the tasks take each code as its window's max as they copy their rows (no pool
    kernel on one core before the conv; SVHN ConvNet's and LeNet's pools). Where takes_pool."""
    walk = walk_of(site.geo, w, x.dtype, site.isa, site.zp, site.taps)
    walk = replace(walk, tasks=replace(walk.tasks, pool=pool))
    return te_walk(x, w, walk, Finish(site.epi, consts, RULE))


def reference(qx: np.ndarray, w: DeltaLists, site: Site) -> np.ndarray:
    """numpy: the same taps summed in int64 (the bound makes the kernel's accumulators exact)."""
    geo = site.geo
    xf = np_flat(qx, geo, site.zp).astype(np.int64)
    oy, ox = np.meshgrid(np.arange(geo.ho), np.arange(geo.wo), indexing="ij")
    base = geo.base(oy, ox).reshape(-1)  # [Ho*Wo]
    acc_p, acc_n = np_signed_sums(lambda taps: xf[:, base[:, None] + tap_offset(geo, taps)[None, :]].sum(-1), w)
    y = requantize.np_apply(site.epi, acc_p, acc_n, channel_axis=1)
    return y.reshape(geo.out_shape())


PRIMITIVE = Primitive("conv2d", Format.DELTA, STEM, "ternary", geometry, pack, compute, reference,
                      compute_add=compute_add, int16_pairs=int16_pairs, takes_pool=takes_pool,
                      compute_pooled=compute_pooled)
