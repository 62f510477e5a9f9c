"""The spatial delta walk split into per-core tasks, each with its own copy of the layout: by
output rows (one task per block of rows, each doing the whole layer for its rows), or, for small
maps, by blocks of channels. A task copies the input rows its outputs read (its rows and a
halo of kh - 1) into its own flat layout (conv_layout's: zero-point padded, zero tail), walks
every channel's lists over its flat positions, applies the epilogue and writes the valid columns
to the NCHW output: one parallel region a layer, no layout pass or crop on one core around it.

Why rows: the channel split (delta_walk's `parallel`) makes every core read the whole input,
which the other core wrote. With the layout pass and the crop on the first core and the walk's
positions split over two (an AMD EPYC znver4, 2 cores), ResNet-44's 16-channel 32x32 layers ran
5.8 -> 7.4-8.2 us: the second core waited for the lines the first had written. Split by rows, a
task reads its own rows (which the previous layer's task of the same index wrote) and the halo,
and writes its own rows: the lines stay on their core.

An output height that does not divide into the tasks (SVHN ConvNet's 7x7 and 5x5 maps) gives the
last task fewer rows: every task walks the positions of `rows` (the most any task has), one loop
nest for all; a shorter task copies only its own rows and halo, and the positions past its last
row, which read whatever lies below its layout's planes (never written, or the next plane's top
row), are dropped.

A conv after a max pool may read the pool's input instead (TaskSplit.pool, passes/
conv_input_fusion): a task copies each code as its window's max (the pool's arithmetic), so no
pool kernel runs on one core between the two layers.

Small maps split by channels instead (`TaskSplit.by_channels`): split by rows, each task walks
its rows' positions (as vectors: partly empty ones cost whole) and decodes every list; an 8x8
output (78 flat positions to its last valid column) walks 40 of them a task (2 zmm of int16 on
AVX-512), where the whole output is 80 (3 vectors). By channels, each
task copies the whole image, decodes and walks its own blocks of channels' lists over all
positions, and writes those channels (contiguous NCHW planes).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

from . import row_reads
from .conv_layout import ConvGeometry
from .delta_lists import CHANNEL_BLOCK


@dataclass(frozen=True)
class TaskSplit:
    """How a flat conv splits into `parts` tasks, each building `geo`'s layout (one
    image) for its rows: of up to `rows` output rows each, or (`by_channels`) of all rows and
    a share of the channel blocks each."""

    parts: int
    rows: int  # output rows per task, the last task's the rest (geo.ho - (parts - 1) * rows)
    geo: ConvGeometry
    zp: int  # the padding's code
    dtype: str  # the layout's code type (the input's, or wider: IsaClass.sparse_taps)
    positions: int  # flat positions a task walks: to its last row's last valid column (ternary_conv2d_delta.walked)
    by_channels: bool = False
    pool: object = None  # int8_max_pool.Pool: x is this max pool's input, each code its window's max

    @property
    def span(self) -> int:
        """Flat positions from one task's first output row to the next's."""
        return 0 if self.by_channels else self.rows * self.geo.wq

    def first_row(self, task):
        return 0 if self.by_channels else task * self.rows

    def rows_of(self, task):
        """Output rows of `task` (a TIR expression)."""
        from tvm import tirx

        return self.rows if self.by_channels else tirx.min(self.rows, self.geo.ho - task * self.rows)

    def blocks_of(self, task) -> tuple:
        """[first, end) of the channel blocks (delta_lists.CHANNEL_BLOCK) `task` walks."""
        blocks = -(-self.geo.co // CHANNEL_BLOCK)
        if not self.by_channels:
            return 0, blocks
        return task * blocks // self.parts, (task + 1) * blocks // self.parts


@dataclass(frozen=True)
class Residual:
    """A residual connection added to the conv's codes as they are written: the other branch's
    codes (its rows are read by the task that writes them), the add's constants, and the x86
    pair instructions (requantize_pairs.PairMadd) where the class has them (int8_add_pairs)."""

    other: object  # [N, Co, Ho, Wo] 8-bit buffer
    consts: object  # int8_add.AddConsts
    pairs: object = None


def split(T, x, out, n, rs: TaskSplit, dtype: str, walk_channels, add: Residual | None = None):
    """The tasks over image n of x [N, Ci, H, W], the epilogue writing `dtype`: each calls
    walk_channels(layout, base, store, done, blocks) with its layout buffer, its first flat
    position, the store of a channel's flat outputs, `done(c)`, which writes channel c's valid
    columns of its rows to `out` (plus `add`'s codes, requantized), and its channel blocks
    [first, end)."""

    with T.parallel(0, rs.parts) as task:
        xf = T.alloc_buffer((1, rs.geo.flat_len), rs.dtype, scope="global")
        flat_out = T.alloc_buffer((rs.positions,), dtype, scope="global")  # one channel's
        _copy_rows(T, x, xf, n, task, rs)

        def store(c, index, v):
            T.buffer_store(flat_out, v, [index[0]])

        def done(c):
            with T.serial(0, rs.rows_of(task)) as r:
                _write_row(T, out, flat_out, n, c, r, rs.first_row(task) + r, rs.geo, add)

        walk_channels(xf, task * rs.span, store, done, rs.blocks_of(task))


def _write_row(T, out, flat_out, n, c, r, oy, g: ConvGeometry, add: Residual | None):
    """Output row oy of channel c: the valid columns of the flat outputs' row r, plus the residual
    branch's codes, requantized: in int16 pairs (int8_add_pairs) where the row is whole vectors
    of x86 int16 lanes, else int8_add's int32 form."""
    from tvm import tirx

    from . import int8_add, int8_add_pairs

    pm = None if add is None else int8_add_pairs.for_row(add.pairs, g.wo)
    if pm is not None and int8_add_pairs.usable(add.consts):
        width = pm.int16_lanes
        for at in range(0, g.wo, width):
            cols = tirx.Ramp(at, 1, width)
            y = tirx.BufferLoad(flat_out, [tirx.Ramp(r * g.wq + at, 1, width)])
            v = int8_add_pairs.te_vector(pm, add.consts, y, tirx.BufferLoad(add.other, [n, c, oy, cols]))
            T.buffer_store(out, v, [n, c, oy, cols])
        return
    with T.vectorized(0, g.wo) as ox:
        y = flat_out[r * g.wq + ox]
        if add is not None:
            y = int8_add.value(y, add.other[n, c, oy, ox], add.consts)
        T.buffer_store(out, y, [n, c, oy, ox])


def _reader(T, x, g: ConvGeometry, pool):
    """read(n, c, y, q, o): the code of the conv's input pixel (y, sw * q + o). Without a pool,
    x's (every step-th row and column of it, every second one as uint16 pairs: row_reads); with
    one (x is the pool's input), the max of its window in x (row_reads.pooled_reader)."""
    if pool is not None:
        assert g.step == 1, "a pooled input is read whole"
        return row_reads.pooled_reader(T, x, pool, g.sw)
    pairs = row_reads.pairs_of(T, x) if g.sw * g.step == 2 else None
    return lambda n, c, y, q, o: row_reads.code(x, pairs, n, c, y * g.step, q, g.sw * g.step, o * g.step)


def _copy_rows(T, x, xf, n, task, rs: TaskSplit):
    """The padded rows task `task` reads, in every phase plane, and the zero tail under its
    positions (escape entries read it). Rows of the other tasks are left as they are: only the
    positions past the task's last row (the vector rounding) read them, and those outputs are
    dropped. A strided conv's task reads its output rows and a halo of khq - 1 rows of each
    phase plane (conv_layout: phase (py, px) holds the pixels (y*sh + py, x*sw + px)); an
    unfolded one's task copies each row once per kernel column (plane (ci, kx): pixels x + kx)."""
    from tvm import tirx

    g, zp = rs.geo, tirx.const(rs.zp, rs.dtype)
    top, left = g.pad[0], g.pad[1]
    halo = g.hq - g.ho  # the phase rows beyond the outputs: khq - 1, or more where the padding rounds up
    read = _reader(T, x, g, rs.pool)
    with T.serial(0, g.ci) as c:
        for py, px, ux in itertools.product(range(g.sh), range(g.sw), range(g.unfold)):
            o = px + ux - left  # phase column q holds pixel column sw * q + o (ux: an unfolded kernel column)
            # the phase columns that hold pixels: [lo, hi) (the stride-1 plane's [left, left + w))
            lo, hi = max(0, -(o // g.sw)), min(g.wq, -(-(g.w - o) // g.sw))
            with T.serial(0, rs.rows_of(task) + halo) as r:
                yy = rs.first_row(task) + r  # phase row
                y = yy * g.sh + py - top
                row = g.plane_start(c, py, px, ux) + yy * g.wq
                with T.If(tirx.all(y >= 0, y < g.h)):
                    with T.Then():  # the row's codes, then its padding columns
                        with T.vectorized(0, hi - lo) as q:
                            code = read(n, c, y, lo + q, o)
                            T.buffer_store(xf, code.astype(rs.dtype), [0, row + lo + q])
                        for col in [*range(lo), *range(hi, g.wq)]:
                            T.buffer_store(xf, zp, [0, row + col])
                    with T.Else():
                        with T.vectorized(0, g.wq) as xx:
                            T.buffer_store(xf, zp, [0, row + xx])
    with T.vectorized(0, rs.positions) as p:
        T.buffer_store(xf, tirx.const(0, rs.dtype), [0, g.image + task * rs.span + p])
