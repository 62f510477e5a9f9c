"""The int8 conv's grouped flat layout, copied row by row with an interleave (stride-1 convs).

conv_layout.te_flat(group=4) defines the layout: per group of 4 channels a padded plane of
positions, each position the 4 channels' codes side by side, a dot-product operand. As a TE compute
vectorized over (position, channel) each lane of a vector reads another channel's plane, which LLVM
compiles to a byte load and an insert per lane. Here, per group and row, the 4 channels' rows are
read 16 positions at a time as 4 vectors and zipped into one vector (zip_vectors: the interleave).
Measured on an AMD EPYC znver4, one thread, each copy alone: SVHN ConvNet's 18x18 layouts (24-30 KB)
5.4 / 7.1 -> 0.49 / 0.64 us, its 7x7 ones 5.0 -> 3.0 us (short rows); the BWN SVHN ConvNet whole,
both forms in one process, 0.179 -> 0.169 ms (AVX-512 build) and 0.336 -> 0.309 ms (AVX2), the same
outputs. (That first row copy went through a stack buffer of the 4 rows, read back by a per-lane
index: LLVM built the interleave from shuffles of constant tables on 18-wide rows, but from a byte
load and insert per lane, stalled on the stores it read, on the 32-wide rows of ResNet-44: the BWN
ResNet-44's layer1 convs (16 -> 16 channels, 32x32) spent more of their samples in the serial layout
copy than in their dot products (perf). With the zip (AMD EPYC znver4, AVX-512 VNNI build, both
forms in one process, 30 turns): layer1.0.conv1 18.8 -> 13.5 us, layer2.1.conv1 13.4 -> 10.7 us, the
whole BWN ResNet-44 0.80x the time (40 turns); SVHN ConvNet's 18-wide conv2 even.) The borders (only
they: a row's interior is written once) and rows outside the image get the zero point's code,
channels past Ci zero, the tail zeros: the same values as te_flat's (the primitive tests compare the
kernels with the numpy reference on every ISA class). The loop nest is its own schedule (a te.extern
stage), so it carries te_flat's LAYOUT role for the schedules that look for it. A big copy of a conv
on two cores is split by rows over the cores, and the dot products split their positions the same
way (splits_rows, parallel_costs.PARALLEL_MIN_LAYOUT_BYTES: written by one core, the layout's lines
were first moved back from the core that read them in the last run, ~3x the copy's time).
Where the conv reads the input of the op before it (passes/conv_input_fusion: a max pool's, or the
model's floats), each row of a group is first staged on the stack, one lane's expression each
(its window's max through row_reads, or its quantize: input_quantize), then interleaved as above.
"""
from __future__ import annotations

from ..parallel_costs import PARALLEL_MIN_LAYOUT_BYTES, PARALLEL_MIN_LAYOUT_MACS
from . import roles
from .conv_layout import ConvGeometry, code_shift, te_flat

TAIL_LANES = 64  # zero-tail stores a vector
INTERLEAVE_POSITIONS = 16  # positions a zip: 64 codes of 4 channels (a 512-bit vector), 32 of 2


def covers(geo: ConvGeometry, group: int) -> bool:
    """Whether this copy builds te_flat's layout for these arguments: channel groups, stride 1."""
    return group > 1 and (geo.sh, geo.sw, geo.step) == (1, 1, 1)


def te_layout(x, geo: ConvGeometry, zp: int, group: int, dtype: str, quant=None, pool=None):
    """te_flat(x, geo, zp, group=group, dtype=dtype) [N, flat_len, group]: this row copy where it
    covers the arguments, else te_flat's TE compute (which loads and inserts a byte per vector
    lane). `quant` (input_quantize.InputQuantize): x holds floats the copy quantizes; `pool`
    (int8_max_pool.Pool): x is that max pool's input, each code its window's max (where the copy
    covers the arguments: each row is staged, then interleaved)."""
    if covers(geo, group):
        return te_grouped(x, geo, zp, group, dtype, quant=quant, pool=pool)
    assert quant is None and pool is None, "te_flat reads the codes themselves"
    return te_flat(x, geo, zp, group=group, dtype=dtype)


def te_grouped(x, geo: ConvGeometry, zp: int, group: int, dtype: str, name: str = "xflat", quant=None, pool=None):
    """[N, flat_len, group] of geo.grouped(group): te_flat(x, geo, zp, group=group, dtype=dtype)."""
    from tvm import te

    g = geo.grouped(group)
    split = splits_rows(geo, g, group, dtype)
    return te.extern([(geo.n, g.flat_len, group)], [x],
                     lambda ins, outs: _body(ins[0], outs[0], geo, zp, group, dtype, split, quant, pool),
                     dtype=[dtype], name=name, attrs=layout_attrs(split))


def _stage(T, x, quant, pool):
    """code(n, c, y, v): the conv's input code at (c, y, v) as one lane's expression, where x is
    not those codes (floats to quantize, a pool's input), else None (inside an IRBuilder frame)."""
    from . import row_reads

    if quant is not None:
        return lambda n, c, y, v: quant.te_codes(x[n, c, y, v])
    if pool is not None:
        read = row_reads.pooled_reader(T, x, pool, 1)
        return lambda n, c, y, v: read(n, c, y, v, 0)
    return None


def splits_rows(geo: ConvGeometry, g: ConvGeometry, group: int, dtype: str) -> bool:
    """Whether the copy of the conv `geo` into grouped geometry `g` splits its rows over the cores:
    a layout of parallel_costs.PARALLEL_MIN_LAYOUT_BYTES or more, of a conv of
    PARALLEL_MIN_LAYOUT_MACS multiply-adds or more. The dot products then split
    their positions the same way (schedules/dot_product), so each core reads the rows it wrote."""
    import tvm

    macs = geo.n * geo.co * geo.ho * geo.wo * geo.ci * geo.kh * geo.kw
    size = g.n * g.flat_len * group * tvm.DataType(dtype).bits // 8
    return size >= PARALLEL_MIN_LAYOUT_BYTES and macs >= PARALLEL_MIN_LAYOUT_MACS


def layout_attrs(split: bool) -> dict:
    """The copy's block annotations: its role, and whether it splits its rows (ROWS_SPLIT_KEY)."""
    return roles.attrs(roles.LAYOUT, **({roles.ROWS_SPLIT_KEY: 1} if split else {}))


def rows(g: ConvGeometry, split: bool):
    """The loop over the padded rows yq of every plane (T.parallel where `split`)."""
    from tvm.tirx.script import builder as T

    return (T.parallel if split else T.serial)(0, g.hq)


def _body(x, out, geo: ConvGeometry, zp: int, group: int, dtype: str, split: bool, quant=None, pool=None):
    from tvm import tirx
    from tvm.script.ir_builder import IRBuilder
    from tvm.tirx.script import builder as T

    g = geo.grouped(group)
    top, left, w = geo.pad[0], geo.pad[1], geo.w
    codes = quant.dtype if quant is not None else str(x.dtype)  # the conv's input codes
    code, pad_code, zero = operand_codes(codes, dtype, zp)
    size = geo.n * g.flat_len * group
    with IRBuilder() as ib:
        with T.serial(0, geo.n) as n:
            stage = _stage(T, x, quant, pool)
            flat = T.decl_buffer((size,), dtype, data=out.data)  # the output as one vector of codes
            with rows(g, split) as yq:
                staged = T.alloc_buffer((group * w,), codes, scope="global") if stage else None  # on the stack
                with T.serial(0, g.ci) as gi:
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
                            if stage:  # the group's rows of codes, each lane its own expression
                                for j in range(group):
                                    with T.vectorized(0, w) as v:
                                        T.buffer_store(staged, stage(n, tirx.min(gi * group + j, geo.ci - 1), y, v), [j * w + v])

                            def load(j, x0, count):  # channel gi * group + j's codes at x0
                                ch = gi * group + j
                                if stage:
                                    v = staged.vload([j * w + x0], typed(codes, count))
                                else:
                                    v = x.vload([n, tirx.min(ch, geo.ci - 1), y, x0], typed(codes, count))
                                return tirx.Select(ch < geo.ci, code(v), splat(zero, count))

                            interleave(flat, base + left * group, w, group, load)
                        with T.Else():
                            padding(0, g.wq)
                zero_tail_share(flat, n, g, group, dtype, yq)
    return ib.get()


def zero_tail_share(flat, n, g: ConvGeometry, group: int, dtype: str, yq) -> None:
    """Row yq's share of zeroing image n's tail in the layout `flat` of grouped geometry `g`
    (inside an IRBuilder, in the loop over rows): whole vectors, as many a row, the part vector
    with the last row. Spread over the rows, the tail is spread over the cores that split them:
    written with the last row, a whole plane or more (SVHN ConvNet's conv1: 11.5 KB of its 34)
    held up the other core (AMD EPYC znver4, AVX-512 VNNI build: the core of the last rows 3.0
    us against 1.1)."""
    from tvm import tirx
    from tvm.tirx.script import builder as T

    zero = tirx.const(0, dtype)
    tail = (g.flat_len - g.image) * group
    start = (n * g.flat_len + g.image) * group
    vectors = tail // TAIL_LANES
    per_row = -(-vectors // g.hq)
    with T.serial(0, per_row) as t:
        v = yq * per_row + t
        with T.If(v < vectors):
            with T.Then():
                with T.vectorized(0, TAIL_LANES) as lane:
                    T.buffer_store(flat, zero, [start + v * TAIL_LANES + lane])
    if tail % TAIL_LANES:
        with T.If(yq == g.hq - 1):
            with T.Then():
                with T.vectorized(0, tail % TAIL_LANES) as lane:
                    T.buffer_store(flat, zero, [start + tail - tail % TAIL_LANES + lane])


def interleave(flat, at, w: int, group: int, load) -> None:
    """flat[at + xx * group + j] = row j's code at position xx (xx < w, j < group), position-major:
    INTERLEAVE_POSITIONS positions at a time, each the rows' vectors zipped into one (zip_vectors),
    `load(j, x0, count)` (`count` codes, of type typed(dtype, count)). A rest of a row longer than
    a chunk is the row's last whole chunk, written again in part: LLVM zips vectors of other
    lengths (AlexNet's 55-wide rows: 7) a byte at a time (extracts and inserts: the whole layout
    of its conv1 on an AMD EPYC znver4, one thread, 28.7 -> 25.0 us). (Written as a per-lane index
    into a stack copy of the rows, LLVM loaded and inserted each byte.)"""
    from tvm import tirx
    from tvm.tirx.script import builder as T

    def chunk(x0, count):
        if count == 1:  # (no vector of one lane)
            for j in range(group):
                T.buffer_store(flat, load(j, x0, 1), [at + x0 * group + j])
            return
        T.buffer_store(flat, zip_vectors([load(j, x0, count) for j in range(group)], count, flat.dtype),
                       [tirx.Ramp(at + x0 * group, 1, count * group)])

    with T.serial(0, w // INTERLEAVE_POSITIONS) as c:
        chunk(c * INTERLEAVE_POSITIONS, INTERLEAVE_POSITIONS)
    if w % INTERLEAVE_POSITIONS and w > INTERLEAVE_POSITIONS:  # the last whole chunk, again in part
        chunk(w - INTERLEAVE_POSITIONS, INTERLEAVE_POSITIONS)
    elif w % INTERLEAVE_POSITIONS:
        chunk(0, w)


def zip_vectors(vectors: list, lanes: int, dtype: str):
    """One vector holding lane p of every vector in turn (out[len(vectors) * p + j] =
    vectors[j][p]; 2 or 4 vectors of `lanes`), from LLVM's vector.interleave2. (Not TIR's Shuffle,
    which MetaSchedule's task weighting, EstimateTIRFlops, cannot visit: tuning a model failed.)"""
    from tvm import tirx

    def interleave2(a, b, n):
        return tirx.call_llvm_pure_intrin(f"{dtype}x{2 * n}", "llvm.vector.interleave2", a, b)

    if len(vectors) == 2:
        return interleave2(*vectors, lanes)
    assert len(vectors) == 4, "channel groups of 2 or 4"
    v0, v1, v2, v3 = vectors  # (v0 v2 zipped) zipped with (v1 v3): v0[p] v1[p] v2[p] v3[p]
    return interleave2(interleave2(v0, v2, lanes), interleave2(v1, v3, lanes), 2 * lanes)


def typed(dtype: str, lanes: int) -> str:
    """The type of `lanes` values of `dtype`: the scalar type for one (TVM has no one-lane vector)."""
    return dtype if lanes == 1 else f"{dtype}x{lanes}"


def splat(value, lanes: int):
    """Scalar `value` as `lanes` of it (itself for one), inside an IRBuilder: a load of a stack
    buffer its scalar stores fill, which LLVM folds to the constant vector. (TIR's vector constant,
    a Broadcast, is what MetaSchedule's task weighting, EstimateTIRFlops, cannot visit, nor a Ramp
    value: tuning a model with such a layout failed.)"""
    from tvm.tirx.script import builder as T

    if lanes == 1:
        return value
    dtype = str(value.ty.dtype)
    buf = T.alloc_buffer((lanes,), dtype, scope="global")
    with T.vectorized(0, lanes) as i:
        T.buffer_store(buf, value, [i])
    return buf.vload([0], typed(dtype, lanes))


def operand_codes(x_dtype: str, dtype: str, zp: int):
    """(code(v): an input code of type x_dtype in the operand's type `dtype`, the padding's code,
    zero): the values the layout copies write (te_flat's)."""
    import tvm
    from tvm import tirx

    shift = code_shift(x_dtype, dtype)

    def code(v):  # (v: a scalar or a vector; a vector inside an IRBuilder: splat)
        lanes = tvm.DataType(str(v.ty.dtype)).lanes
        if not shift:
            return v.astype(typed(dtype, lanes))
        return (v.astype(typed("int32", lanes)) + splat(tirx.const(shift, "int32"), lanes)).astype(typed(dtype, lanes))

    return code, code(tirx.const(zp, x_dtype)), tirx.const(0, dtype)
