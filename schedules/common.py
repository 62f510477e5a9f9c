"""Schedule building blocks shared by the per-target schedule files.

Every primitive has the same skeleton: one or two accumulation blocks (acc_p, acc_n) feeding an
elementwise requantizing epilogue (the block that carries the schedule_rule tag), for convs
over flat or 2-D output positions; the computes declare each block's role (primitives/roles.py),
which is how the schedules find them. What differs per target family is only the vector width and
the default knob values, read from the target's ISA class (`tvm_deepchip/isa.py`), so most
primitives need no per-target file (schedules/table.py).

Knobs: `Fixed` returns the default value (build without tuning); `Sampled` turns a knob into a
MetaSchedule `sample_categorical` decision that the tuner searches and records. Branch-free:
only split factors and unroll depths are sampled (a Python `if` on a sample would not replay).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

# When a loop is worth TVM's thread pool: tvm_deepchip/parallel_costs.py (the delta kernels'
# hand-built loop nests read the same figures).
from tvm_deepchip.parallel_costs import (  # noqa: F401 - re-exported to the schedule files
    PARALLEL_MIN_DOT_OPS,
    PARALLEL_MIN_GATHERS,
    PARALLEL_MIN_LANES,
    PARALLEL_MIN_MACS,
    PARALLEL_MIN_PART_LANES,
    PARALLEL_MIN_WORK,
    SCALAR_COST,
)
from tvm_deepchip.primitives import roles

if TYPE_CHECKING:
    from tvm_deepchip.isa import IsaClass


class Fixed:
    def choice(self, sch, candidates, default):
        return default


class Sampled:
    def choice(self, sch, candidates, default):
        probs = [1.0 / len(candidates)] * len(candidates)
        return sch.sample_categorical(candidates, probs)


def loops_below(sch, block, loop) -> list:
    """The block's loops under `loop` (one of its own, e.g. after compute_at), outermost first."""
    own = sch.get_loops(block)
    return own[[sch.get(lp).same_as(sch.get(loop)) for lp in own].index(True) + 1:]


def _extent(sch, loop) -> int:
    return int(sch.get(loop).extent)


def _block_name(sch, block) -> str:
    return sch.get(block).name_hint


def _accumulators(sch, epilogue):
    return roles.having(sch, sch.get_producers(epilogue), roles.ACCUMULATOR)


def _acc_bits(sch, acc) -> int:
    return int(sch.get(acc).writes[0].source.dtype.bits)  # 0.27: TensorRegion.source


def _work(sch, accs) -> int:
    total = 0
    for acc in accs:
        n = 1
        for loop in sch.get_loops(acc):
            n *= _extent(sch, loop)
        total += n
    return total


def _vectorize_accumulator(sch, acc, depth: int, blocked: bool, to_local: bool = True) -> None:
    """acc is computed at loop `depth`: next come [channel block], the vector lane, then the
    reductions. Put the reductions outside so the block of accumulators stays in registers,
    lanes innermost; split off the zero-init (it inherits the vectorization)."""
    loops = sch.get_loops(acc)
    spatial = 2 if blocked else 1
    spatial_loops, reds = loops[depth : depth + spatial], loops[depth + spatial :]
    if reds:
        sch.reorder(*reds, *spatial_loops)
        words = int(sch.get(acc).annotations.get(roles.WORDS_KEY, 1))
        if words > 1:  # rows in words of `words` offsets (sparse_rows.in_words): one load, unrolled
            outer, inner = sch.split(reds[0], [None, words])
            sch.unroll(inner)
            reds = [outer, *reds[1:]]
    sch.vectorize(spatial_loops[-1])
    if blocked:
        sch.unroll(spatial_loops[0])
    if reds:
        sch.decompose_reduction(acc, reds[0])
    if to_local:
        sch.set_scope(acc, 0, "local")


def _divisors(n: int, candidates) -> list:
    return [c for c in candidates if n % c == 0] or [1]


def _rows_of(sch, accs):
    return [b for a in accs for b in roles.having(sch, sch.get_producers(a), roles.ROW_SUMS)]


def _acc_lanes(sch, accs, isa) -> int:
    """Accumulators per vector register."""
    return isa.vector_bytes * 8 // max(_acc_bits(sch, a) for a in accs)


def _split_positions(sch, space, acc_lanes, knobs):
    """(outer, lane) loops of the output positions: the lanes are one vector's worth."""
    inner = space[-1]
    if _extent(sch, inner) % (2 * acc_lanes) == 0:  # flat positions: padded to whole vectors
        vl = knobs.choice(sch, [acc_lanes, 2 * acc_lanes, 4 * acc_lanes], 2 * acc_lanes)
        return sch.split(inner, [None, vl])
    if len(space) == 1:  # a small flat output (conv_layout.SMALL_FLAT_BLOCKS): one short vector
        return sch.split(inner, [None, _extent(sch, inner)])
    return space[0], inner  # 2-D output: one row per vector (rows of strided layers are short)


def _chunks(sch, epilogue, accs, isa) -> int:
    """How many vectors of flat output positions the default split gives (_split_positions);
    1 for 2-D outputs (tiny maps, iterated by row)."""
    space = sch.get_loops(epilogue)[2:]
    inner, lanes = _extent(sch, space[-1]), 2 * _acc_lanes(sch, accs, isa)
    return inner // lanes if len(space) == 1 and inner % lanes == 0 else 1


def _tile(sch, consumer, accs, knobs, isa, share_input=False, to_local=True):
    """Vectorize `consumer` over its innermost spatial axis and compute `accs` inside."""
    work = _work(sch, accs)
    n, c, *space = sch.get_loops(consumer)
    cands = _divisors(_extent(sch, c), [4, 2]) if share_input else [1]
    blocked = cands != [1]
    if blocked:
        co, ci = sch.split(c, [None, knobs.choice(sch, cands, cands[0])])
    outer, lane = _split_positions(sch, space, _acc_lanes(sch, accs, isa), knobs)
    if blocked:
        sch.reorder(n, co, outer, ci, lane)
    nc = sch.fuse(n, co if blocked else c)
    if work >= PARALLEL_MIN_LANES:
        sch.parallel(nc)
    depth = len(sch.get_loops(consumer)) - (2 if blocked else 1)
    for acc in accs:
        sch.compute_at(acc, outer)
        _vectorize_accumulator(sch, acc, depth, blocked, to_local)
    sch.vectorize(lane)


def _tile_chunks(sch, epilogue, accs, rows, knobs, isa):
    """Sparse convs on two cores: output positions cut into chunks (the outer loop, parallel),
    each chunk's row sums computed right before the channels that add them up. A row sum is
    then read by the core that wrote it, and the layer is one parallel region. (Rows in
    parallel, then channels in parallel, moved every row sum between the cores' caches and
    launched three regions: AlexNet's conv3 on an Intel Xeon with AVX-512, 497 -> 328 us.)"""
    n, c, *space = sch.get_loops(epilogue)
    outer, lane = _split_positions(sch, space, _acc_lanes(sch, accs, isa), knobs)
    sch.reorder(outer, n, c, lane)
    sch.parallel(outer)
    _accumulators_at(sch, epilogue, accs, c, lane)
    _rows_under(sch, rows, outer)


def _accumulators_at(sch, epilogue, accs, loop, lane) -> None:
    """The accumulators computed under `loop` of the epilogue, in registers, vectorized along
    its `lane` loop (the epilogue's innermost) as the epilogue is."""
    depth = len(sch.get_loops(epilogue)) - 1
    for acc in accs:
        sch.compute_at(acc, loop)
        _vectorize_accumulator(sch, acc, depth, False, True)
    sch.vectorize(lane)


def _rows_under(sch, rows, loop) -> None:
    """Each row-sum block computed under `loop` (the rows its consumers there read), summed in
    registers, one vector of positions a row, then stored."""
    for r in rows:
        copy = sch.cache_write(r, 0, "local")
        sch.compute_at(copy, loop)
        sch.compute_at(r, sch.get_loops(copy)[-2])  # copy: [..., row, lane]
        # r: [..., row, lane, j] (no j loop where the rows hold one tap)
        _vectorize_accumulator(sch, r, len(sch.get_loops(copy)) - 1, False, False)
        sch.vectorize(sch.get_loops(copy)[-1])


def _tile_parts(sch, epilogue, accs, rows, parts: int, knobs, isa):
    """Sparse convs on tiny maps on two cores: the channels cut into `parts` blocks (the outer
    loop, parallel), each block's row sums (sparse_rows' channel parts: a slice of rows of its own)
    computed by the core that gathers them, so the layer is one parallel region. Each core also
    copies the (small) input into a layout of its own, in the region: one core copying it before
    the region and the other then reading it from that core's cache cost more. Measured (AMD EPYC
    znver4, AVX2 build, the digits model's three 2x2 convs, the two builds in one process in
    turns): the model 0.927x the time."""
    n, c, *space = sch.get_loops(epilogue)
    h, _ = sch.split(c, [parts, None])
    outer, lane = _split_positions(sch, space, _acc_lanes(sch, accs, isa), knobs)
    nh = sch.fuse(n, h)
    sch.parallel(nh)
    _accumulators_at(sch, epilogue, accs, outer, lane)
    _rows_under(sch, rows, nh)
    for prod in roles.having(sch, sch.get_producers(rows[0]), roles.LAYOUT):
        sch.compute_at(prod, nh)
        sch.set_scope(prod, 0, "local")  # the task's own copy (on its stack)


def schedule_spatial(sch, epilogue, knobs, isa: IsaClass, share_input: bool = False):
    """Convolutions: vectorize over consecutive output positions (flat p, or ox), one vector
    add per tap. With `share_input` (int8, packed: every channel reads the same inputs) a
    block of channels is computed together so each input vector is loaded once for all.
    Sparse row sums (sparse_rows) get the same treatment, rows in place of channels.
    Parallel when the layer is big enough; outputs of 1x1 spatial size (dense-like convs) run
    as scalar sums, channels in parallel."""
    accs = _accumulators(sch, epilogue)
    space = sch.get_loops(epilogue)[2:]
    if all(_extent(sch, lp) == 1 for lp in space):
        return _schedule_pointwise(sch, epilogue, accs, knobs)
    rows = _rows_of(sch, accs)
    parts = max(int(sch.get(a).annotations.get(roles.PARTS_KEY, 1)) for a in accs)
    if rows and _work(sch, rows + accs) >= PARALLEL_MIN_LANES and _chunks(sch, epilogue, accs, isa) >= 2:
        _tile_chunks(sch, epilogue, accs, rows, knobs, isa)
    elif rows and parts > 1 and _work(sch, rows) >= PARALLEL_MIN_PART_LANES:
        _tile_parts(sch, epilogue, accs, rows, parts, knobs, isa)
    else:
        _tile(sch, epilogue, accs, knobs, isa, share_input)
        for r in rows:
            copy = sch.cache_write(r, 0, "local")  # r accumulates in registers, copy stores
            _tile(sch, copy, [r], knobs, isa, to_local=False)
    _finish_producers(sch, rows or accs)
    _finish_crop(sch, epilogue)
    return sch


def _schedule_pointwise(sch, epilogue, accs, knobs):
    loops = sch.get_loops(epilogue)
    nc = sch.fuse(*loops)
    rows = _rows_of(sch, accs)
    if _work(sch, rows or accs) >= PARALLEL_MIN_GATHERS:
        sch.parallel(nc)
    for acc in accs:
        sch.compute_at(acc, nc)
    _scalar_sums(sch, rows, knobs)
    _scalar_sums(sch, [] if rows else accs, knobs)
    _finish_producers(sch, rows or accs)
    return sch


def _scalar_sums(sch, blocks, knobs):
    """Row sums over long index lists: rows in parallel, the list unrolled."""
    for b in blocks:
        loops = sch.get_loops(b)
        if len(loops) > 1 and roles.role_of(sch.get(b)) != roles.ACCUMULATOR:
            fused = sch.fuse(*loops[:-1])
            if _work(sch, [b]) >= PARALLEL_MIN_GATHERS:
                sch.parallel(fused)
        words = int(sch.get(b).annotations.get(roles.WORDS_KEY, 1))  # unrolled whole words
        unroll = knobs.choice(sch, [4, 8] if words > 1 else [1, 4, 8], 4)
        _, ri = sch.split(sch.get_loops(b)[-1], [None, unroll])
        sch.unroll(ri)


def schedule_dense(sch, epilogue, knobs, isa: IsaClass):
    """Sparse and packed dense layers: channels in parallel blocks; each accumulator a scalar sum
    over its list, unrolled. (int8 dense: schedules/dense_dot.)"""
    accs = _accumulators(sch, epilogue)
    work = _work(sch, accs)
    n, c = sch.get_loops(epilogue)
    nc = sch.fuse(n, c)
    cb = knobs.choice(sch, [4, 8, 16], 8)
    outer, inner = sch.split(nc, [None, cb])
    if work >= PARALLEL_MIN_GATHERS:
        sch.parallel(outer)
    for acc in accs:
        sch.compute_at(acc, inner)
        loops = sch.get_loops(acc)
        if len(loops) > len(sch.get_loops(epilogue)):  # its own reduction loop survived
            unroll = knobs.choice(sch, [1, 4, 8], 4)
            _, ri = sch.split(loops[-1], [None, unroll])
            sch.unroll(ri)
    rows = _rows_of(sch, accs)
    _scalar_sums(sch, rows, knobs)
    _finish_producers(sch, rows or accs)
    return sch


def schedule_walked(sch, epilogue, knobs, isa: IsaClass):
    """Delta-list primitives: their walk (primitives/delta_walk) is a hand-built loop nest that
    already carries its vectors, its split over cores and the epilogue (so it is the block with
    the schedule rule); what is left is the input's layout pass and the crop. (TVM gives the
    walk's te.extern block no read/write regions, so blocks are found by role, not dataflow.)"""
    blocks = roles.top_blocks(sch)
    for prod in roles.having(sch, blocks, roles.LAYOUT):
        _finish_layout(sch, prod)
    if sch.get_loops(epilogue):  # the column walk's epilogue, a stage after its sums: along the channels
        _, c, *_ = sch.get_loops(epilogue)
        if _extent(sch, c) % 16 == 0:
            _, lane = sch.split(c, [None, 16])
            sch.vectorize(lane)
    _vectorize_crops(sch, roles.having(sch, blocks, roles.CROP) or roles.having(sch, blocks, roles.RESIDUAL))
    return sch


def schedule_nothing(sch, epilogue, knobs, isa: IsaClass):
    """A primitive that is one hand-built loop nest (te.extern) carrying its own vectors and split
    over cores: nothing is left to schedule."""
    return sch


def schedule_bit_dot(sch, epilogue, knobs, isa: IsaClass):
    """Bit-plane dot products (primitives/bit_dot): the sums are a hand-built loop nest with its
    own vectors and split over cores; left are the grouped input codes, the epilogue along the
    channels (whole vectors of 16) and the crop. Blocks found by role (te.extern has no regions)."""
    blocks = roles.top_blocks(sch)
    for prod in roles.having(sch, blocks, roles.LAYOUT):
        _finish_layout(sch, prod)
    _, c = sch.get_loops(epilogue)
    _, lane = sch.split(c, [None, 16])
    sch.vectorize(lane)
    _finish_crop(sch, epilogue)
    return sch


def _zero_inits(sch, block) -> list:
    """The zero-init split off `block` by decompose_reduction: a producer writing its buffer."""
    out = sch.get(block).writes[0].source  # 0.27: TensorRegion.source
    return [p for p in sch.get_producers(block) if any(w.source.same_as(out) for w in sch.get(p).writes)]


def _finish_producers(sch, accs) -> None:
    """The padded/flattened input: a data-movement pass, vectorized along its last axis. (The
    zero-init of vectorized row sums gets the same split: the default schedules were measured
    and tuned with it.)"""
    seen = set()
    for acc in accs:
        inits = _zero_inits(sch, acc) if roles.role_of(sch.get(acc)) == roles.ROW_SUMS else []
        for prod in roles.having(sch, sch.get_producers(acc), roles.LAYOUT) + inits:
            name = _block_name(sch, prod)
            if name in seen:
                continue
            seen.add(name)
            _finish_layout(sch, prod)


def split_grouped_flat(sch, prod) -> tuple:
    """The grouped flat layout [N, flat, group] (a group of channels per position) with its flat
    loop split into (plane, y, x) by the block's SPLIT_KEY extents, no div/mod: (n, plane, the x
    and group loops fused, to vectorize)."""
    n, i, j = sch.get_loops(prod)
    h, w = (int(v) for v in sch.get(prod).annotations[roles.SPLIT_KEY])
    plane, _, xl = sch.split(i, [None, h, w])
    return n, plane, sch.fuse(xl, j)


def _finish_layout(sch, prod) -> None:
    """One data-movement pass, vectorized along its last axis (a te.extern copy, which has no
    loops to schedule, is its own: primitives/grouped_layout)."""
    loops = sch.get_loops(prod)
    if not loops:
        return
    split = sch.get(prod).annotations.get(roles.SPLIT_KEY)
    if split is not None and len(loops) == 3:
        sch.vectorize(split_grouped_flat(sch, prod)[2])
    elif split is not None:  # flat index = ((c * H) + y) * W + x: loops without div/mod
        h, w = (int(v) for v in split)
        _, _, xl = sch.split(loops[-1], [None, h, w])
        sch.vectorize(xl)
    elif _extent(sch, loops[-1]) % 16 == 0:
        _, li = sch.split(loops[-1], [None, 16])
        sch.vectorize(li)


def _finish_crop(sch, epilogue) -> None:
    """The crop after `epilogue` (its consumers)."""
    _vectorize_crops(sch, sch.get_consumers(epilogue))


def _vectorize_crops(sch, crops) -> None:
    """The copies of the valid outputs out of the flat positions: small, so one core, vectorized
    along output columns. A residual add fused after the kernel (primitives/int8_add, role
    RESIDUAL) reads the crop: the crop is inlined into it and the add is vectorized instead (or
    it reads the epilogue itself, when there is no crop)."""
    for crop in crops:
        added = [] if roles.role_of(sch.get(crop)) == roles.RESIDUAL else roles.having(sch, sch.get_consumers(crop), roles.RESIDUAL)
        if added:
            sch.compute_inline(crop)
            crop = added[0]
        sch.vectorize(sch.get_loops(crop)[-1])
