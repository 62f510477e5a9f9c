"""The loop nests that walk delta lists (delta_lists.py): every channel's acc_p and acc_n, and
the epilogue on them.

TE has no loop-carried state, and a walk keeps two (where the stream is read, the current tap k),
so this builds the TIR of the accumulation directly, as one te.extern stage after the kernel's TE
layout. The requantizing epilogue (requantize.te_value; on x86, int16 accumulators in pairs:
requantize_pairs) runs inside it, on the accumulators while they are in registers: one parallel
region per layer, and no accumulator written to memory and read back by a second pass on one
core (the digits model's convs: 0.69-0.76x -> 0.76-0.86x the index rows per layer, two threads).
The loop nest is therefore also its schedule: the vector width and the split over cores come in
as parameters (the primitive derives them from the ISA class and the thresholds every schedule
uses, parallel_costs.py).

Two forms:
- pointwise (dense layers, convs with one output position): per list, one scalar gather-add
  per entry, k advanced by the entry (a vector form, 8 entries a step decoded by shuffles and
  read by AVX2's vpgatherdd, was bit-exact but no faster on an Intel Xeon: about a cycle an entry
  either way, and slower on AlexNet's fc2; nor were both lists in one loop, the epilogue over 16
  channels at once, or 8 entries a step; on an AMD EPYC znver5, scripts/peak/delta_walk_forms.c
  over SVHN ConvNet's conv7 and AlexNet's fc1 lists, one core, against this scalar walk: AVX-512
  gathers 1.66-1.79x its time, AVX2 gathers 1.10-1.42x, gaps decoded as vectors into a stack table
  then read back 1.09-2.18x, 8 gaps read as one 64-bit word 0.94-1.26x by compiler tuning);
- spatial (convs): both lists of a channel decoded, DECODE_GROUP entries at a time, into local
  tables of tap offsets (a vector prefix sum of the gaps, then the offsets computed lane by lane),
  then for each step of output positions one vector add per tap of each list, the two
  accumulators in registers, and the epilogue.
A layer whose input codes are zero where its values are (a ReLU's output) and whose lists by
input take no more bytes walks those instead (column_lists, column_walk: zero inputs skipped).
An escape entry reads `Walk.zero` (an input that is zero for every position) instead of its k.
Channels are walked in blocks of delta_lists.CHANNEL_BLOCK from `starts`, in parallel when
`parallel`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .delta_lists import CHANNEL_BLOCK, COUNT_MORE, DECODE_GROUP, ESCAPE_GAP, DeltaLists

I16 = "int16"
I32 = "int32"
I64 = "int64"
UNROLL = 4  # entries per step of the pointwise walk (a multiple of delta_lists' chains)
# Running sums of the pointwise form's lists (delta_lists: a run of taps each), preferred first.
# Four, one per entry of a step: measured on AlexNet's fc1/fc2 (AMD EPYC znver4, 2 threads,
# fastest of 9 x 50 runs), 4 chains 463/207 us against 2 chains 515/233 (sparse rows 490/234); 3
# chains or 8 entries a step were slower. Each chain past the first costs a start byte a list,
# so 4 only where they cost at most POINT_CHAINS_GROWTH more bytes than 2: SVHN ConvNet's conv7
# at 90% zeros (~160 taps a list) grows 1.7% with 4 (170.4 -> 173.2 KB; the network's ternary
# bytes 1.46x -> ~1.48x the entropy bound, under the 1.5x the format keeps) and runs 0.93x the
# time (znver4, AVX-512 VNNI, 2 threads, 30 x 50 runs in turns); at 1% it took 2. (An earlier
# form of the chains grew it 4.6%, past the bound.)
POINT_CHAINS = (4, 2)
POINT_CHAINS_GROWTH = 0.02


def point_lists(codes2):
    """The pointwise form of delta lists, as this walk reads them: the most running sums whose
    stream is within POINT_CHAINS_GROWTH of the fewest's."""
    forms = [DeltaLists.of(codes2, chains, UNROLL) for chains in POINT_CHAINS]
    least = min(f.nbytes() for f in forms)
    return next(f for f in forms if f.nbytes() <= (1 + POINT_CHAINS_GROWTH) * least)


@dataclass(frozen=True)
class Walk:
    """How the kernel walks: its output extents and how a position maps to its input."""

    lead: tuple  # (N, Co)
    space: tuple  # the accumulators' position extents
    outer: tuple  # extents of the position loops outside the vector (empty: pointwise)
    lanes: int  # positions per vector step (1: pointwise)
    acc: str  # accumulator type
    parallel: bool  # channel blocks on TVM's thread pool
    tap_offset: Callable  # k (int32 expr) -> input offset of that tap
    zero: int  # an input offset holding zero from every position's base (escapes read it)
    base: Callable | None = None  # (outer vars, lane var) -> input offset of that output position
    out_index: Callable | None = None  # (outer vars, lane var) -> the accumulator's position indices
    chunk: int = 0  # spatial, int32 acc: taps summed in int16 before each widening add (0: none)
    tail: tuple = ()  # flat outputs: the parts (lanes each) of one last step after the outer[0] steps of `lanes`
    tasks: object = None  # delta_rows.TaskSplit: a task per block of rows or channels (x is then the NCHW input)
    pairs: object = None  # requantize_pairs.PairMadd (x86): int16 accumulators' epilogue and residual adds in pairs

    @property
    def pointwise(self) -> bool:
        return not self.outer

    @property
    def step_lanes(self) -> int:
        """The accumulators' lanes: the widest step's."""
        return max(self.lanes, sum(self.tail))


@dataclass(frozen=True)
class Finish:
    """What the walk writes: the epilogue of each channel's two sums (requantize.te_value)."""

    epi: object  # requantize.Epilogue
    consts: list  # its constants (TE tensors), read per channel
    rule: str  # the primitive's schedule rule, which the walk's block carries as the epilogue
    residual: tuple | None = None  # (other tensor, int8_add.AddConsts): added to the output (row split only)


def te_walk(x, w: DeltaLists, walk: Walk, finish: Finish):
    """The output [N, Co, *space]: the epilogue of the sums of the +1 and of the -1 taps' inputs
    (te.extern over x [N, flat], the stream and the epilogue's constants)."""
    from tvm import te

    from . import roles

    out_shape = tuple(int(v) for v in (*walk.lead, *walk.space))
    other = [finish.residual[0]] if finish.residual is not None else []
    assert not other or walk.tasks is not None, "a residual add inside the walk needs the task split"
    return te.extern([out_shape], [w.stream, w.starts, x, *other, *finish.consts],
                     lambda ins, outs: _body(ins, outs[0], w, walk, finish),
                     dtype=[finish.residual[1].out_dtype if other else finish.epi.out_dtype], name=roles.EPILOGUE_NAME,
                     attrs=roles.epilogue_attrs(finish.rule))


def _body(ins, out, w: DeltaLists, walk: Walk, finish: Finish):
    from tvm.script.ir_builder import IRBuilder
    from tvm.tirx.script import builder as T

    from . import requantize_pairs
    from .requantize import te_value

    stream, starts, x, *consts = ins
    other = consts.pop(0) if finish.residual is not None else None
    n_img, co = (int(v) for v in walk.lead)
    value = _Value(lambda c, a_p, a_n: te_value(finish.epi, consts, c, a_p, a_n))
    if walk.pairs is not None and walk.acc == I16 and requantize_pairs.usable(walk.pairs, finish.epi):
        value = _Value(value.one, tuple(requantize_pairs.narrower(walk.pairs)),
                       lambda pm, c, a_p, a_n: requantize_pairs.te_group(pm, finish.epi, consts, c, a_p, a_n))
    with IRBuilder() as ib:
        with T.serial(0, n_img) as n:
            if walk.tasks is not None:  # a task per block of rows or channels, each with its own layout copy
                from . import delta_rows

                add = None if other is None else delta_rows.Residual(other, finish.residual[1], walk.pairs)
                delta_rows.split(T, x, out, n, walk.tasks, finish.epi.out_dtype, lambda xf, base, store, done, blocks: _channels(
                    T, stream, starts, xf, 0, co, w, walk, value, T.serial, base, store, done, blocks), add)
            else:
                def store(c, index, v):
                    T.buffer_store(out, v, [n, c, *index])

                _channels(T, stream, starts, x, n, co, w, walk, value, T.parallel if walk.parallel else T.serial, 0, store)
    return ib.get()


def _channels(T, stream, starts, x, xn, co, w, walk, value, loop, base, store, done=None, blocks=None):
    """Every channel's two lists walked over image `xn` of the layout x (positions from `base`),
    blocks of CHANNEL_BLOCK channels in `loop` (T.parallel or T.serial), those in [first, end)
    where `blocks` says; `store(c, index, v)` writes channel c's output at the walk's position
    index, `done(c)` follows its last."""
    first, end = blocks or (0, -(-co // CHANNEL_BLOCK))
    with loop(first, end) as cb:
        ptr, escapes = _scratch(T, 1, I32), _scratch(T, 1, I32)
        cnts = [_scratch(T, 1, I32) for _ in range(2)]  # the +1 list's, the -1 list's
        if walk.pointwise:  # k in 64 bits: no sign extension on the walk's dependency chain
            k, sums = _scratch(T, w.chains, I64), [_scratch(T, 1, walk.acc) for _ in range(2)]
        else:
            groups = -(-max(w.longest, 1) // DECODE_GROUP)
            tables = [_scratch(T, groups * DECODE_GROUP, I32) for _ in range(2)]
            run, last = _scratch(T, DECODE_GROUP, I32), _scratch(T, 1, I32)
            accs = [_scratch(T, walk.step_lanes, walk.acc) for _ in range(2)]
            part = _scratch(T, walk.step_lanes, I16) if walk.chunk else None
        T.buffer_store(ptr, starts[cb].astype(I32), [0])
        with T.serial(0, CHANNEL_BLOCK) as ci:
            c = cb * CHANNEL_BLOCK + ci
            with T.If(c < co):
                with T.Then():
                    for sign in range(2):  # the +1 list, then the -1 list
                        cnt = cnts[sign]
                        read_head(T, stream, ptr, cnt, escapes)
                        if walk.pointwise:  # never escapes (delta_lists: hops are entries)
                            _walk_point(T, stream, x, xn, ptr, cnt, k, sums[sign], walk)
                        else:
                            _either(T, escapes, lambda e, s=sign, cn=cnt: _decode(T, stream, ptr, cn, tables[s], run, last, walk, e))
                        T.buffer_store(ptr, ptr[0] + cnt[0], [0])
                    if walk.pointwise:
                        store(c, [0] * len(walk.space), value.one(c, sums[0][0], sums[1][0]))
                    else:
                        _add_taps(T, x, xn, c, cnts, tables, accs, part, walk, value, base, store)
                    if done is not None:
                        done(c)


def _scratch(T, size: int, dtype: str):
    """A per-thread scratch buffer. Scope "global": TVM's LowerTVMBuiltin puts small global-scope
    allocations of CPU code on the stack (where LLVM keeps one-element ones in registers) and
    serves "local" ones from TVMBackendAllocWorkspace, i.e. memory reached through a pointer."""
    return T.alloc_buffer((size,), dtype, scope="global")


def read_head(T, stream, ptr, cnt, escapes):
    """A list's head: its entry count into cnt, whether it holds escapes into `escapes`."""
    T.buffer_store(cnt, 0, [0])
    with T.While(stream[ptr[0]].astype(I32) == COUNT_MORE):
        T.buffer_store(cnt, cnt[0] + COUNT_MORE, [0])
        T.buffer_store(ptr, ptr[0] + 1, [0])
    T.buffer_store(cnt, cnt[0] + stream[ptr[0]].astype(I32), [0])
    T.buffer_store(ptr, ptr[0] + 1, [0])
    T.buffer_store(escapes, cnt[0] & 1, [0])
    T.buffer_store(cnt, cnt[0] >> 1, [0])


def _either(T, escapes, walk):
    """walk(True) for a list with escapes, walk(False) (no escape test per entry) otherwise."""
    with T.If(escapes[0] != 0):
        with T.Then():
            walk(True)
        with T.Else():
            walk(False)


def _gap(stream, at, escapes: bool):
    """(how far entry `at` advances k, whether it is a tap) as int32 expressions."""
    from tvm import tirx

    g = stream[at].astype(I32)
    if not escapes:
        return g, None
    return tirx.Select(g == 0, tirx.const(ESCAPE_GAP, I32), g), g != 0


def _input_at(tap, offset, walk, dtype=I32):
    """The input offset an entry reads: its tap's, or the zero for an escape."""
    from tvm import tirx

    return offset if tap is None else tirx.Select(tap, offset, tirx.const(walk.zero, dtype))


def _walk_point(T, stream, x, xn, ptr, cnt, k, acc, walk):
    """One position: a scalar gather-add per entry. The lists' chains (delta_lists) keep
    independent running sums in k over the slotted input, each from its start slot (chain 0 from
    0, the others from the list's start bytes, which this moves `ptr` past); UNROLL entries a
    step, a list being a multiple of UNROLL entries (no remainder, no test per entry). The sum is
    left in `acc`."""
    from tvm import tirx

    from .delta_lists import SLOT

    chains = int(k.shape[0])
    T.buffer_store(k, tirx.const(0, I64), [0])
    for i in range(1, chains):
        T.buffer_store(k, stream[ptr[0] + i - 1].astype(I64) * SLOT, [i])
    T.buffer_store(ptr, ptr[0] + chains - 1, [0])
    start = ptr[0].astype(I64)  # 64-bit stream index: no sign extension per entry
    T.buffer_store(acc, tirx.const(0, walk.acc), [0])
    with T.serial(0, cnt[0] // UNROLL) as e:
        _point_taps(T, stream, x, xn, k, acc, walk, start + (e * UNROLL).astype(I64), range(UNROLL))


def _point_taps(T, stream, x, n, k, acc, walk, at, entries):
    """Add the inputs of the entries at stream index `at` + i, entry i being list entry
    entries[i] (its chain: that modulo the chains). Expressions only, stores at the end: a load of
    k inside an expression reads k when the store holding the expression runs."""
    chains = int(k.shape[0])
    advance, value = {}, None
    for i, j in enumerate(entries):
        step = stream[at + i].astype(I64)
        chain = j % chains
        advance[chain] = step if chain not in advance else advance[chain] + step
        read = x[n, walk.tap_offset(k[chain] + advance[chain])].astype(walk.acc)
        value = read if value is None else value + read
    T.buffer_store(acc, acc[0] + value, [0])
    for chain, total in advance.items():
        T.buffer_store(k, k[chain] + total, [chain])


def _decode(T, stream, ptr, cnt, taps, run, last, walk, escapes):
    """taps[e] = the offset of entry e's input, DECODE_GROUP entries at a time: the group's gaps
    as one vector, summed into their prefix sums in log2(DECODE_GROUP) steps (each adds the
    vector moved up `shift` lanes, zeros shifting in: a register shuffle), plus the k before the
    group (`last`). `run` holds the vector between steps, always whole: its stack slot stays a
    register. (Expressions load when their store runs, so `last` is a stored scalar.) Lanes past the list's end decode the next bytes and are never read."""
    from tvm import tirx

    g = DECODE_GROUP
    whole = tirx.Ramp(0, 1, g)  # explicit vectors only over `run` (loops elsewhere: an explicit
    # ramp into the stream broke create_prim_func's int64 index rewrite, which Relax applies)
    zeros = tirx.Broadcast(tirx.const(0, I32), g)
    T.buffer_store(last, tirx.const(-1, I32), [0])
    with T.serial(0, (cnt[0] + g - 1) // g) as grp:
        at = ptr[0] + grp * g
        with T.vectorized(0, g) as v:
            step, _ = _gap(stream, at + v, escapes)
            T.buffer_store(run, step, [v])
        shift = 1
        while shift < g:
            vec = tirx.BufferLoad(run, [whole])
            T.buffer_store(run, vec + tirx.Shuffle([zeros, vec], [g - shift + v for v in range(g)]), [whole])
            shift *= 2
        T.buffer_store(run, tirx.BufferLoad(run, [whole]) + tirx.Broadcast(last[0], g), [whole])
        T.buffer_store(last, tirx.Shuffle([tirx.BufferLoad(run, [whole])], [g - 1]), [0])  # k after it
        with T.vectorized(0, g) as v:
            _, tap = _gap(stream, at + v, escapes)
            T.buffer_store(taps, _input_at(tap, walk.tap_offset(run[v]), walk), [grp * g + v])


def _add_taps(T, x, xn, c, cnts, tables, accs, part, walk, value, base, store):
    """For each step of output positions: one vector add per tap of each list, accumulators in
    registers, then the epilogue. With `part` (walk.chunk taps at a time), the taps are summed in
    int16 and each such partial sum added to the int32 accumulator: half the vector ops of adding
    every tap in int32 (the index rows' kernel gets the same from its int16 row sums)."""
    if walk.outer[0]:
        with _nest(T, walk.outer) as outer:
            _step(T, x, xn, c, cnts, tables, accs, part, walk, value, base, store, outer, (walk.lanes,))
    if walk.tail:  # flat: the last step's parts from lane 0 of step outer[0] (walk.base is linear in both)
        _step(T, x, xn, c, cnts, tables, accs, part, walk, value, base, store, (walk.outer[0],), walk.tail)


def _step(T, x, xn, c, cnts, tables, accs, part, walk, value, base, store, outer, parts):
    """One step: sum(parts) positions from lane 0 of step `outer` (input offsets from `base`),
    each part its own vector loop in the loop over a list's taps, both lists, the epilogue."""
    from tvm import tirx

    runs = [(sum(parts[:i]), n) for i, n in enumerate(parts)]  # (first lane, lanes) of each part

    def each(body):
        for at, lanes in runs:
            with T.vectorized(0, lanes) as v:
                body(at + v)

    def add_range(into, taps, lo, hi):
        with T.serial(lo, hi) as t:
            each(lambda v: T.buffer_store(
                into, into[v] + x[xn, base + walk.base(outer, v) + taps[t]].astype(into.dtype), [v]))

    for acc, cnt, taps in zip(accs, cnts, tables):
        each(lambda v, acc=acc: T.buffer_store(acc, tirx.const(0, walk.acc), [v]))
        if part is None:
            add_range(acc, taps, 0, cnt[0])
            continue
        size = walk.chunk
        with T.serial(0, (cnt[0] + size - 1) // size) as ch:
            each(lambda v: T.buffer_store(part, tirx.const(0, I16), [v]))
            add_range(part, taps, ch * size, tirx.min(cnt[0], ch * size + size))
            each(lambda v, acc=acc: T.buffer_store(acc, acc[v] + part[v].astype(walk.acc), [v]))
    for at, lanes in runs:
        _finish_part(T, c, accs, walk, value, store, outer, at, lanes)


def _finish_part(T, c, accs, walk, value, store, outer, at, lanes):
    """The epilogue of accumulator lanes [at, at + lanes) (the positions of those lanes of step
    `outer`): in explicit vectors two at a time, of the widest pair instructions whose vectors the
    part fills (a 16-lane part on AVX-512: AVX2's), else lane by lane."""
    from tvm import tirx

    pm = next((p for p in value.pairs if lanes % p.int16_lanes == 0), None)
    if pm is not None:
        width = pm.int16_lanes
        for off in range(0, lanes, 2 * width):  # (the last alone where the part has an odd number)
            ramps = [tirx.Ramp(at + v, 1, width) for v in range(off, min(off + 2 * width, lanes), width)]
            sums = [[tirx.BufferLoad(acc, [r]) for r in ramps] for acc in accs]
            *lead, first = walk.out_index(outer, at + off)  # positions run along the last index
            store(c, (*lead, tirx.Ramp(first, 1, width * len(ramps))), value.in_pairs(pm, c, *sums))
        return
    with T.vectorized(0, lanes) as v:
        store(c, walk.out_index(outer, at + v), value.one(c, accs[0][at + v], accs[1][at + v]))


@dataclass(frozen=True)
class _Value:
    """The epilogue of a channel's two sums: `one(c, a_p, a_n)` per lane (expressions), or, with
    `pairs` (requantize_pairs.PairMadd of the class and the narrower ones, widest first),
    `in_pairs(pm, c, acc_p, acc_n)` over a group of its outputs (one or two int16 vectors of pm's
    width of each list's sums)."""

    one: Callable
    pairs: tuple = ()
    in_pairs: Callable | None = None


class _nest:
    """Nested serial loops over `extents` as one context: yields their variables."""

    def __init__(self, T, extents):
        self.frames = [T.serial(0, int(e)) for e in extents]

    def __enter__(self):
        return [f.__enter__() for f in self.frames]

    def __exit__(self, *exc):
        for f in reversed(self.frames):
            f.__exit__(*exc)
        return False
