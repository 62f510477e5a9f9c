"""The walk over column lists (column_lists.py): each core's share of the inputs, a zero input
skipped, a non-zero one added into the accumulators of the channels its lists name; then the
shares' sums and the requantizing epilogue.

As the delta walk (delta_walk.py), the loop carries state TE cannot express (where the stream is
read, the running sums), so its TIR is built directly, as one te.extern stage: per core, a
zeroed array of slotted accumulators on its stack (both signs), the inputs of its share in
order, and its sums copied out unslotted. The epilogue is a TE stage after it, vectorized along
the channels by the schedule (schedules/common.schedule_walked).
"""
from __future__ import annotations

from .column_lists import CHAINS, ColumnLists
from .delta_lists import SLOT, slotted
from .delta_walk import read_head

I32 = "int32"
I64 = "int64"


def te_layer(x, w: ColumnLists, site, consts, out_shape, rule: str):
    """The layer's output (out_shape: [N, Co], or [N, Co, 1, 1] for a conv of one position): its
    sums (te_column_sums), then the requantizing epilogue of `site`."""
    return te_epilogue(te_column_sums(x, w), site.epi, consts, out_shape, rule)


def te_column_sums(x, w: ColumnLists):
    """[N, parts, 2, Co] int32: per core's share of the inputs of x [N, K] (8-bit codes), the
    sums of the inputs over each channel's +1 taps and its -1 taps."""
    from tvm import te

    from . import roles

    n = int(x.shape[0])
    return te.extern([(n, w.parts, 2, w.channels)], [w.stream, w.starts, x],
                     lambda ins, outs: _body(ins, outs[0], w), dtype=[I32], name="column_sums",
                     attrs=roles.attrs(roles.ACCUMULATOR))


def te_epilogue(sums, epi, consts, out_shape, rule: str):
    """The epilogue (requantize.te_apply) of the shares' sums [N, parts, 2, Co] added up, in
    out_shape ([N, Co], or [N, Co, 1, 1] for a conv of one output position)."""
    from tvm import te

    from . import requantize, roles

    def acc(sign):
        return lambda n, c, *rest: sum(sums[n, t, sign, c] for t in range(int(sums.shape[1])))

    f = requantize.te_apply(epi, acc(0), acc(1), consts, index_channel=lambda idx: idx[1])
    return te.compute(out_shape, lambda *i: f(i), name=roles.EPILOGUE_NAME, attrs=roles.epilogue_attrs(rule))


def _body(ins, out, w: ColumnLists):
    from tvm.script.ir_builder import IRBuilder
    from tvm.tirx.script import builder as T

    stream, starts, image = ins
    n_img = int(image.shape[0])
    size = int(slotted(w.channels - 1)) + 1  # slotted positions up to the last channel's
    with IRBuilder() as ib:
        with T.serial(0, n_img) as n:
            x = T.decl_buffer((n_img, w.inputs), image.dtype, data=image.data)  # [N, K]: a conv's NCHW image, flat
            with (T.parallel if w.parts > 1 else T.serial)(0, w.parts) as task:
                acc = T.alloc_buffer((2 * size,), I32, scope="global")
                ptr, cnt, v, flag = (T.alloc_buffer((1,), I32, scope="global") for _ in range(4))
                at = T.alloc_buffer((CHAINS,), I64, scope="global")
                with T.vectorized(0, 2 * size) as i:
                    T.buffer_store(acc, 0, [i])
                T.buffer_store(ptr, starts[task], [0])
                first = task * w.inputs // w.parts
                with T.serial(0, (task + 1) * w.inputs // w.parts - first) as j:
                    T.buffer_store(v, x[n, first + j].astype(I32), [0])
                    for sign in range(2):
                        read_head(T, stream, ptr, cnt, flag)  # (no list holds escapes)
                        with T.If(v[0] != 0):
                            with T.Then():
                                _scatter(T, stream, ptr, cnt, at, acc, sign * size, v)
                        T.buffer_store(ptr, ptr[0] + cnt[0], [0])
                _copy_out(T, out, acc, n, task, size, w.channels)
    return ib.get()


def _scatter(T, stream, ptr, cnt, at, acc, base: int, v):
    """The list at ptr (cnt entries): CHAINS entries a step, each moving its running sum on and
    adding v there; then the last cnt % CHAINS entries, one running sum each."""
    from tvm import tirx

    for r in range(CHAINS):
        T.buffer_store(at, tirx.const(0, I64), [r])
    start = ptr[0].astype(I64)
    with T.serial(0, cnt[0] // CHAINS) as e:
        _step(T, stream, at, acc, base, v, start + (e * CHAINS).astype(I64), range(CHAINS))
    rest = start + (cnt[0] // CHAINS * CHAINS).astype(I64)
    for r in range(CHAINS - 1):
        with T.If(cnt[0] % CHAINS > r):
            with T.Then():
                _step(T, stream, at, acc, base, v, rest, [r])


def _step(T, stream, at, acc, base: int, v, where, chains):
    """Entries where + r for r in chains: running sum r moves on by its gap, v added there."""
    for r in chains:
        pos = at[r] + stream[where + r].astype(I64)
        T.buffer_store(at, pos, [r])
    for r in chains:
        T.buffer_store(acc, acc[base + at[r]] + v[0], [base + at[r]])


def _copy_out(T, out, acc, n, task, size: int, channels: int):
    """The real channels' sums, unslotted: channel b * (SLOT - 1) + i sits at b * SLOT + i + 1."""
    per = SLOT - 1
    for sign in range(2):
        for b in range(-(-channels // per)):
            width = min(per, channels - b * per)
            with T.vectorized(0, width) as i:
                T.buffer_store(out, acc[sign * size + b * SLOT + 1 + i], [n, task, sign, b * per + i])
