"""The int8 conv's grouped flat layout, copied row by row with an interleave (stride-1 convs).

conv_layout.te_flat(group=4) defines the layout: per group of 4 channels a padded plane of
positions, each position the 4 channels' codes side by side, a dot-product operand. As a TE
compute vectorized over (position, channel) each lane of a vector reads another channel's plane,
which LLVM compiles to a byte load and an insert per lane. Here, per group and row, the 4
channels' rows are read as 4 contiguous vectors into a small stack buffer and stored interleaved
as one vector (LLVM builds the interleave from shuffles). Measured on an AMD EPYC znver4, one
thread, each copy alone: SVHN ConvNet's 18x18 layouts (24-30 KB) 5.4 / 7.1 -> 0.49 / 0.64 us, its
7x7 ones 5.0 -> 3.0 us (short rows); the BWN SVHN ConvNet whole, both forms in one process, 0.179
-> 0.169 ms (AVX-512 build) and 0.336 -> 0.309 ms (AVX2), the same outputs. The borders (only
they: a row's interior is written once) and rows outside the image get the zero point's code,
channels past Ci zero, the tail zeros: the same values as te_flat's (the primitive tests compare the kernels with the numpy
reference on every ISA class). The loop nest is its own schedule (a te.extern stage), so it
carries te_flat's LAYOUT role for the schedules that look for it.
"""
from __future__ import annotations

from . import roles
from .conv_layout import ConvGeometry, code_shift, te_flat

TAIL_LANES = 64  # zero-tail stores a vector


def covers(geo: ConvGeometry, group: int) -> bool:
    """Whether this copy builds te_flat's layout for these arguments: channel groups, stride 1."""
    return group > 1 and (geo.sh, geo.sw, geo.step) == (1, 1, 1)


def te_layout(x, geo: ConvGeometry, zp: int, group: int, dtype: str):
    """te_flat(x, geo, zp, group=group, dtype=dtype) [N, flat_len, group]: this row copy where it
    covers the arguments, else te_flat's TE compute (which loads and inserts a byte per vector
    lane)."""
    if covers(geo, group):
        return te_grouped(x, geo, zp, group, dtype)
    return te_flat(x, geo, zp, group=group, dtype=dtype)


def te_grouped(x, geo: ConvGeometry, zp: int, group: int, dtype: str, name: str = "xflat"):
    """[N, flat_len, group] of geo.grouped(group): te_flat(x, geo, zp, group=group, dtype=dtype)."""
    from tvm import te

    g = geo.grouped(group)
    return te.extern([(geo.n, g.flat_len, group)], [x], lambda ins, outs: _body(ins[0], outs[0], geo, zp, group, dtype),
                     dtype=[dtype], name=name, attrs=roles.attrs(roles.LAYOUT))


def _body(x, out, geo: ConvGeometry, zp: int, group: int, dtype: str):
    from tvm import tirx
    from tvm.script.ir_builder import IRBuilder
    from tvm.tirx.script import builder as T

    g = geo.grouped(group)
    top, left, w = geo.pad[0], geo.pad[1], geo.w
    code, pad_code, zero = operand_codes(str(x.dtype), dtype, zp)
    size = geo.n * g.flat_len * group
    with IRBuilder() as ib:
        with T.serial(0, geo.n) as n:
            flat = T.decl_buffer((size,), dtype, data=out.data)  # the output as one vector of codes
            with T.serial(0, g.ci) as gi:
                rows = T.alloc_buffer((group * w,), dtype, scope="global")  # on the stack (delta_walk._scratch)
                with T.serial(0, g.hq) as yq:
                    base = ((n * g.flat_len) + gi * g.plane + yq * g.wq) * group

                    def padding(lo: int, hi: int):  # positions lo .. hi - 1 of the row: the padding code
                        if hi > lo:  # (channels past Ci: zero)
                            with T.serial(lo, hi) as xq:
                                with T.vectorized(0, group) as j:
                                    T.buffer_store(flat, tirx.Select(gi * group + j < geo.ci, pad_code, zero),
                                                   [base + xq * group + j])

                    y = yq - top
                    with T.If(tirx.all(y >= 0, y < geo.h)):
                        with T.Then():
                            padding(0, left)
                            padding(left + w, g.wq)
                            for j in range(group):  # each channel's row: one contiguous vector
                                ch = gi * group + j
                                with T.vectorized(0, w) as xx:
                                    value = code(x[n, tirx.min(ch, geo.ci - 1), y, xx])
                                    T.buffer_store(rows, tirx.Select(ch < geo.ci, value, zero), [j * w + xx])
                            with T.vectorized(0, w * group) as lane:  # interleaved: position-major
                                T.buffer_store(flat, rows[(lane % group) * w + lane // group], [base + left * group + lane])
                        with T.Else():
                            padding(0, g.wq)
            zero_tail(flat, n, g, group, dtype)
    return ib.get()


def operand_codes(x_dtype: str, dtype: str, zp: int):
    """(code(v): an input code of type x_dtype in the operand's type `dtype`, the padding's code,
    zero): the values the layout copies write (te_flat's)."""
    from tvm import tirx

    shift = code_shift(x_dtype, dtype)

    def code(v):
        return (v.astype("int32") + shift).astype(dtype) if shift else v.astype(dtype)

    return code, code(tirx.const(zp, x_dtype)), tirx.const(0, dtype)


def zero_tail(flat, n, g: ConvGeometry, group: int, dtype: str) -> None:
    """Zero image n's tail in the layout `flat` (one vector of codes) of grouped geometry `g`
    (inside an IRBuilder)."""
    from tvm import tirx
    from tvm.tirx.script import builder as T

    zero = tirx.const(0, dtype)
    tail = (g.flat_len - g.image) * group
    start = (n * g.flat_len + g.image) * group
    with T.serial(0, tail // TAIL_LANES) as t:
        with T.vectorized(0, TAIL_LANES) as lane:
            T.buffer_store(flat, zero, [start + t * TAIL_LANES + lane])
    if tail % TAIL_LANES:
        with T.vectorized(0, tail % TAIL_LANES) as lane:
            T.buffer_store(flat, zero, [start + tail - tail % TAIL_LANES + lane])
