"""Balanced index lists for the sparse ternary kernels.

Output channels hold very different numbers of non-zero weights (after BatchNorm folding, a
per-layer threshold keeps 2-7x more taps in some channels than the mean). Padding every list to
the longest one would make every channel pay for the densest. Instead each channel's list is
cut into rows of one length L; all rows are summed in one pass (`rows[r]`), and each channel
adds up its own rows through a small table (`rowmap[c, t]`, padded with the all-zero last row):

    row_sum[r, p] = sum_j x[p + rows[r, j]]          acc[c, p] = sum_t row_sum[rowmap[c, t], p]

L is chosen to minimize the adds of both steps (plus a per-row overhead).

Channel parts: the channels may be cut into `parts` equal blocks whose rows are stored apart, each
block's rows (and its own all-zero row, which its table's padding points at) in one slice of R_p
rows, padded with zero rows to the same R_p. A core that computes one block of channels then
computes exactly that slice of row sums, which the schedule can see from the indices alone
(te_gather_rows clamps a block's rows to its slice): the convs on tiny maps run as one parallel
region, each core summing and gathering its own rows (schedules/common._tile_parts).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import roles
from .conv_layout import acc_dtype
from .record import Weights, scalar

ROW_OVERHEAD = 4  # loop and store cost of one row, in adds


def choose_row_length(counts: np.ndarray) -> int:
    top = max(int(counts.max()), 1)
    best, best_cost = top, None
    length = 4
    while True:
        rows = np.ceil(counts / length)
        t = max(int(rows.max()), 1)
        cost = (rows.sum() + 1) * (length + ROW_OVERHEAD) + len(counts) * t
        if best_cost is None or cost < best_cost:
            best, best_cost = length, cost
        if length >= top:
            return min(best, top)
        length *= 2


def pack_rows(lists: list, pad: int, parts: int = 1, multiple: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """lists: per output channel an int array of offsets. -> (rows [parts * R_p, L], rowmap int32
    [Co, T]): the channels cut into `parts` equal blocks, each block's rows in its own slice of
    R_p rows that ends with all-`pad` rows (at least one: the block's table padding points at its
    last). One part: the rows, then one all-`pad` row. Rows hold a multiple of `multiple`
    offsets (in_words' four: a short list's rows take the rest as padding). Offsets are stored
    as uint16 where they fit (most layers): half the bytes the kernel streams, at no cost (loads
    widen for free)."""
    if len(lists) % parts:
        raise ValueError(f"{len(lists)} channels do not cut into {parts} equal parts")
    counts = np.array([len(x) for x in lists])
    length = -(-choose_row_length(counts) // multiple) * multiple
    block = len(lists) // parts
    chunks = [[np.asarray(lst[start : start + length]) for start in range(0, len(lst), length)] for lst in lists]
    per_part = [sum(len(chunks[c]) for c in range(h * block, (h + 1) * block)) for h in range(parts)]
    part_rows = max(per_part) + 1
    rows = np.full((parts * part_rows, length), pad, np.int64)
    t = max(1, max(len(ch) for ch in chunks))
    table = np.empty((len(lists), t), np.int32)
    for h in range(parts):
        nxt = h * part_rows
        for c in range(h * block, (h + 1) * block):
            table[c, :] = (h + 1) * part_rows - 1  # the part's last row: all pad
            for k, chunk in enumerate(chunks[c]):
                rows[nxt, : len(chunk)] = chunk
                table[c, k] = nxt
                nxt += 1
    dtype = np.uint16 if pad < 2**16 else np.int32
    return rows.astype(dtype), table


@dataclass(frozen=True, eq=False)
class SignedRows(Weights):
    """The rows and row tables of the +1 taps, then of the -1 taps (pack_rows)."""

    rows_p: object
    map_p: object
    rows_n: object
    map_n: object
    parts: int = scalar(1)  # channel blocks whose rows are stored apart (pack_rows)

    @classmethod
    def of(cls, signs: np.ndarray, taps_of, pad: int, parts: int = 1) -> "SignedRows":
        """`taps_of(channel_signs, value)`: the offsets of one channel's taps of that value. Rows
        hold a multiple of four offsets, stored in uint64 words where they fit uint16 (in_words)."""
        tables = []
        for value in (1, -1):
            rows, table = pack_rows([taps_of(s, value) for s in signs], pad, parts, OFFSETS_PER_WORD)
            tables += [in_words(rows), table]
        return cls(*tables, parts=parts)

    def nbytes(self) -> int:
        """What the sparse kernels read at run time (weight_sizes: the one count of this form)."""
        from ..weight_sizes import index_rows_bytes

        return index_rows_bytes(self.rows_p, self.map_p, self.rows_n, self.map_n)


# Rows of uint16 offsets may be stored four to a uint64 word (`in_words`): a row sum then loads
# one word for four taps and shifts the offsets out in registers, where one load a tap held a
# loop of loaded adds to the core's two loads a cycle. AMD EPYC znver1, a C loop of 600 rows of
# 32 taps (128-bit adds): 0.55 ns a tap loading each uint16, 0.47 a uint32 of two, 0.38 a uint64
# of four (two accumulators and one load a tap: 0.55, so the loads, not the add chain, bound it).
OFFSETS_PER_WORD = 4


def in_words(rows: np.ndarray) -> np.ndarray:
    """uint16 rows [R, L] as uint64 words [R, L / 4] (the same bytes), where L divides."""
    if rows.dtype == np.uint16 and rows.shape[1] % OFFSETS_PER_WORD == 0:
        return np.ascontiguousarray(rows).view(np.uint64)
    return rows


def np_offsets(rows: np.ndarray) -> np.ndarray:
    """The offsets [R, L] of rows as stored (uint64 words: their uint16 offsets, in order)."""
    return rows.view(np.uint16) if rows.dtype == np.uint64 else rows


def row_length(rows) -> int:
    """Offsets a row holds (TE tensor or numpy array, as stored)."""
    per = OFFSETS_PER_WORD if str(rows.dtype) == "uint64" else 1
    return int(rows.shape[1]) * per


# The tables hold these index types (pack_rows). Index 0 is valid in every table: a tuner that
# fills kernel arguments with random values must fill these with valid_dummy's instead, or the
# gathers read out of bounds.
# The delta lists' byte streams (delta_lists) are uint8: all zero, every list is empty.
INDEX_DTYPES = ("int32", "uint16", "uint8", "uint64")


def valid_dummy(shape, dtype: str) -> np.ndarray | None:
    """A valid stand-in for an index table of this shape and type (None: not an index type)."""
    return np.zeros([int(d) for d in shape], dtype) if str(dtype) in INDEX_DTYPES else None


def te_row_sums(read, rows, shape, acc: str, name: str):
    """row_sum[..., r, *pos] = sum_j read(pos, offset j of row r) over one batch of rows (TE).
    Rows in uint64 words: offset j is bits 16 * (j % 4) of word j // 4 (the block says so,
    roles.WORDS_KEY, for the schedule to unroll the four)."""
    from tvm import te, tirx

    j = te.reduce_axis((0, row_length(rows)), name=f"j_{name}")
    if str(rows.dtype) == "uint64":
        def offset(r, j):
            shift = ((j % OFFSETS_PER_WORD) * 16).astype("uint64")
            return ((rows[r, j // OFFSETS_PER_WORD] >> shift) & tirx.const(0xFFFF, "uint64")).astype("int32")
        attrs = roles.attrs(roles.ROW_SUMS, **{roles.WORDS_KEY: OFFSETS_PER_WORD})
    else:
        def offset(r, j):
            return rows[r, j].astype("int32")
        attrs = roles.attrs(roles.ROW_SUMS)
    return te.compute(shape, lambda n, r, *pos: te.sum(read(n, pos, offset(r, j)).astype(acc), axis=j), name=name, attrs=attrs)


def te_gather_rows(row_sum, rowmap, shape, acc: str, name: str, parts: int = 1):
    """acc[n, c, *pos] = sum_t row_sum[n, rowmap[c, t], *pos] (TE). With channel parts, the
    block carries their count (roles.PARTS_KEY) for the schedule."""
    from tvm import te, tirx

    t = te.reduce_axis((0, int(rowmap.shape[1])), name=f"t_{name}")
    part_rows = int(row_sum.shape[1]) // parts
    block = int(rowmap.shape[0]) // parts

    def row(c, t):  # clamped to the channel's part (a no-op on valid tables) so that loop
        first = (c // block) * part_rows if parts > 1 else 0  # analysis bounds the rows read
        return tirx.max(tirx.min(rowmap[c, t], first + part_rows - 1), first)

    more = {roles.PARTS_KEY: parts} if parts > 1 else {}
    return te.compute(shape, lambda n, c, *pos: te.sum(row_sum[(n, row(c, t), *pos)].astype(acc), axis=t),
                      name=name, attrs=roles.attrs(roles.ACCUMULATOR, **more))


def te_signed_sums(read, w: SignedRows, lead: tuple, space: tuple, in_dtype: str):
    """(acc_p, acc_n) [*lead, *space] of 8-bit codes of `in_dtype`: each the row sums of one sign
    gathered per channel, in the narrowest exact accumulators (TE). `read(n, pos, offset)`."""
    n, co = lead

    def accumulate(rows, rowmap, sign):
        length = row_length(rows)
        row_sum = te_row_sums(read, rows, (n, int(rows.shape[0]), *space), acc_dtype(in_dtype, length), f"rows_{sign}")
        wide = acc_dtype(in_dtype, length * int(rowmap.shape[1]))
        return te_gather_rows(row_sum, rowmap, (n, co, *space), wide, f"acc_{sign}", w.parts)

    return accumulate(w.rows_p, w.map_p, "p"), accumulate(w.rows_n, w.map_n, "n")
