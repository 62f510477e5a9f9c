"""The spatial delta walk split by output rows: one parallel task per block of rows, each doing
the whole layer for its rows. A task copies the input rows its outputs read (its rows and a
halo of kh - 1) into its own flat layout (conv_layout's: zero-point padded, zero tail), walks
every channel's lists over its flat positions, applies the epilogue and writes the valid columns
to the NCHW output: one parallel region a layer, no layout pass or crop on one core around it.

Why rows: the channel split (delta_walk's `parallel`) makes every core read the whole input,
which the other core wrote. With the layout pass and the crop on the first core and the walk's
positions split over two (an AMD EPYC znver4, 2 cores), ResNet-44's 16-channel 32x32 layers ran
5.8 -> 7.4-8.2 us: the second core waited for the lines the first had written. Split by rows, a
task reads its own rows (which the previous layer's task of the same index wrote) and the halo,
and writes its own rows: the lines stay on their core.
"""
from __future__ import annotations

from dataclasses import dataclass

from .conv_layout import ConvGeometry


@dataclass(frozen=True)
class RowSplit:
    """How a stride-1 flat conv splits: `parts` tasks of `rows` output rows, each building
    `geo`'s layout (one image) for its rows."""

    parts: int
    rows: int  # output rows per task (parts * rows = geo.ho)
    geo: ConvGeometry
    zp: int  # the padding's code
    dtype: str  # the layout's code type (the input's, or wider: IsaClass.sparse_taps)
    positions: int  # flat positions a task walks: rows * wq in whole vectors

    @property
    def span(self) -> int:
        """Flat positions from one task's first output row to the next's."""
        return self.rows * self.geo.wq


def split(T, x, out, n, rs: RowSplit, dtype: str, walk_channels, add=None):
    """The tasks over image n of x [N, Ci, H, W], the epilogue writing `dtype`: each calls
    walk_channels(layout, base, store, done) with its layout buffer, its first flat position,
    the store of a channel's flat outputs and `done(c)`, which writes channel c's valid columns to `out`: plus `other`'s
    codes, requantized (int8_add), where `add` = (other, AddConsts) (a residual connection:
    the other branch's rows are read by the task that writes them)."""
    from . import int8_add

    with T.parallel(0, rs.parts) as task:
        xf = T.alloc_buffer((1, rs.geo.flat_len), rs.dtype, scope="global")
        flat_out = T.alloc_buffer((rs.positions,), dtype, scope="global")  # one channel's
        _copy_rows(T, x, xf, n, task, rs)

        def store(c, index, v):
            T.buffer_store(flat_out, v, [index[0]])

        def done(c):
            with T.serial(0, rs.rows) as r:
                with T.vectorized(0, rs.geo.wo) as ox:
                    y, oy = flat_out[r * rs.geo.wq + ox], task * rs.rows + r
                    if add is not None:
                        y = int8_add.value(y, add[0][n, c, oy, ox], add[1])
                    T.buffer_store(out, y, [n, c, oy, ox])

        walk_channels(xf, task * rs.span, store, done)


def _copy_rows(T, x, xf, n, task, rs: RowSplit):
    """The padded rows task `task` reads, in every plane, and the zero tail under its positions
    (escape entries read it). Rows of the other tasks are left as they are: only the positions
    past the task's last row (the vector rounding) read them, and those outputs are dropped."""
    from tvm import tirx

    g, zp = rs.geo, tirx.const(rs.zp, rs.dtype)
    top, left = g.pad[0], g.pad[1]
    halo = g.hq - g.ho  # kh - 1: a stride-1 conv's padded rows beyond its outputs
    with T.serial(0, g.planes) as c:
        with T.serial(0, rs.rows + halo) as r:
            yy = task * rs.rows + r  # padded row
            y = yy - top
            row = c * g.plane + yy * g.wq
            with T.If(tirx.all(y >= 0, y < g.h)):
                with T.Then():  # the row's codes (contiguous loads), then its padding columns
                    with T.vectorized(0, g.w) as xx:
                        T.buffer_store(xf, x[n, c, y * g.step, xx * g.step].astype(rs.dtype), [0, row + left + xx])
                    for col in [*range(left), *range(left + g.w, g.wq)]:
                        T.buffer_store(xf, zp, [0, row + col])
                with T.Else():
                    with T.vectorized(0, g.wq) as xx:
                        T.buffer_store(xf, zp, [0, row + xx])
    with T.vectorized(0, rs.positions) as p:
        T.buffer_store(xf, tirx.const(0, rs.dtype), [0, g.image + task * rs.span + p])
