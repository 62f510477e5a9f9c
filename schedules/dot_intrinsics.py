"""One generator for the int8 dot-product tensor intrinsics: a step of `lanes` int32 accumulators,
each the sum of `group` products, done by one LLVM intrinsic call (x86 `vpdpbusd`, `vpmaddwd`, ARM
`sdot`) or two (x86 `vpmaddubsw`, its int16 pair sums widened by `vpmaddwd`), in either of two
shapes that differ only in which operand is broadcast:

    Shape.POSITIONS   C[i] += sum_k A[i, k] * B[k]    lanes are output positions (int8_conv2d):
                      A: lanes x group consecutive input codes, B: one weight group, broadcast
    Shape.CHANNELS    C[i] += sum_k A[k] * B[i, k]    lanes are output channels (int8_dense):
                      A: one group of input codes, broadcast, B: lanes x group consecutive weights

A holds the input codes (`operand`: uint8 for vpdpbusd and vpmaddubsw, whose first multiplicand
is unsigned; int16 for vpmaddwd; int8 for sdot), B the weights: int8, except next to int16 codes,
where they are int16 (a broadcast weight pair) or int8 widened by the load (vpmovsxbw: a dense
layer's weights, read once each, take half the memory traffic).
Each ISA's file registers its instruction in the shapes its schedules use, under exported names;
`finish_tile` applies one to the lanes of a register tile (the int8 conv's and dense's schedules).
"""
from __future__ import annotations

import enum


# intrinsic name -> vector instructions a multiply-accumulate takes (schedules' work estimates)
_OPS_PER_MAC: dict = {}


def ops_per_mac(name: str) -> float:
    """Vector instructions per multiply-accumulate of registered intrinsic `name`: its LLVM call,
    the widening call and the add to C where it has them, over the lanes x group products."""
    return _OPS_PER_MAC[name]


class Shape(enum.Enum):
    POSITIONS = "positions"
    CHANNELS = "channels"


def register(name: str, shape: Shape, lanes: int, operand: str, llvm_intrinsic: str, a_vector: str,
             b_vector: str, group: int = 4, accumulates: bool = True, widen: str | None = None,
             weight: str = "int8") -> None:
    """Register intrinsic `name`: one call of `llvm_intrinsic` on A as `a_vector` and B as
    `b_vector` (x86's vpdpbusd and ARM's sdot take C and accumulate (`accumulates`); x86's
    vpmaddwd returns the products' sums, which are added to C). With `widen` (x86's vpmaddubsw,
    which sums product pairs into int16 lanes), the call's int16 pair sums go through `widen`
    against ones (vpmaddwd: adjacent pairs summed into int32 lanes) before the add to C.
    `weight`: B's type in memory, int8 or, next to int16 codes (x86's vpmaddwd), int16; int8
    weights next to int16 codes (the channels shape only) are sign-extended to `b_vector` as they
    are loaded."""
    from tvm.s_tir import TensorIntrin
    from tvm.script import tirx as T

    assert group * (16 if operand == "int16" else 8) == 32, "a step's group fills one 32-bit lane"
    assert weight == "int8" or operand == "int16", "int16 weights only next to int16 codes"
    sign_extend = operand == "int16" and weight == "int8"
    assert not sign_extend or shape is Shape.CHANNELS, "int8 weights widen a channels step's B"
    c_vector = f"int32x{lanes}"
    a_shape, b_shape = ((lanes, group), (group,)) if shape is Shape.POSITIONS else ((group,), (lanes, group))

    def a_of(A, i, k):
        return A[i, k] if shape is Shape.POSITIONS else A[k]

    def b_of(B, i, k):
        return B[k] if shape is Shape.POSITIONS else B[i, k]

    def region(buf, dims):
        return buf[tuple(slice(0, d) for d in dims)]

    def vector(buf, dims, dtype, out_type, sign_extend=False):
        """All of `buf` as one vector (`sign_extend`: its lanes widened to out_type's, else its
        bits reinterpreted); a one-group operand is broadcast to every 32-bit lane."""
        if len(dims) == 2:
            v = buf.vload([0, 0], dtype=f"{dtype}x{lanes * group}")
            return T.Cast(out_type, v) if sign_extend else T.reinterpret(v, dtype=out_type)
        one = T.reinterpret(buf.vload([0], f"{dtype}x{group}"), dtype="int32")
        return T.reinterpret(T.broadcast(one, lanes), dtype=out_type)

    def call(c, a, b):
        operands = (c, a, b) if accumulates else (a, b)
        if widen is not None:
            pairs = T.call_llvm_pure_intrin(T.llvm_lookup_intrinsic_id(llvm_intrinsic), *operands,
                                            dtype=f"int16x{lanes * 2}")
            ones = T.broadcast(T.int16(1), lanes * 2)
            return c + T.call_llvm_pure_intrin(T.llvm_lookup_intrinsic_id(widen), pairs, ones, dtype=c_vector)
        out = T.call_llvm_pure_intrin(T.llvm_lookup_intrinsic_id(llvm_intrinsic), *operands, dtype=c_vector)
        return out if accumulates else c + out

    @T.prim_func(s_tir=True)
    def desc(
        A: T.Buffer(a_shape, operand, offset_factor=1),
        B: T.Buffer(b_shape, weight, offset_factor=1),
        C: T.Buffer((lanes,), "int32", offset_factor=1),
    ) -> None:
        with T.sblock("root"):
            T.reads(C[0:lanes], region(A, a_shape), region(B, b_shape))
            T.writes(C[0:lanes])
            for i, k in T.grid(lanes, group):
                with T.sblock("update"):
                    vi, vk = T.axis.remap("SR", [i, k])
                    C[vi] = C[vi] + T.Cast("int32", a_of(A, vi, vk)) * T.Cast("int32", b_of(B, vi, vk))

    # (the signature again: TVMScript parses each prim_func from its own source)
    @T.prim_func(s_tir=True)
    def impl(
        A: T.Buffer(a_shape, operand, offset_factor=1),
        B: T.Buffer(b_shape, weight, offset_factor=1),
        C: T.Buffer((lanes,), "int32", offset_factor=1),
    ) -> None:
        with T.sblock("root"):
            T.reads(C[0:lanes], region(A, a_shape), region(B, b_shape))
            T.writes(C[0:lanes])
            C[T.ramp(T.int32(0), 1, lanes)] = call(
                C.vload([0], dtype=c_vector),
                vector(A, a_shape, operand, a_vector),
                vector(B, b_shape, weight, b_vector, sign_extend=sign_extend),
            )

    TensorIntrin.register(name, desc, impl, override=True)
    _OPS_PER_MAC[name] = (1 + (not accumulates) + (widen is not None)) / (lanes * group)


def finish_tile(sch, init, tile: list, lane, intrin, lanes: int) -> None:
    """The end of a dot-product register tile: the `tile` loops unrolled, the `lanes` long loop
    `lane` tensorized with `intrin` = (name, lanes per instruction), the rest of its lanes
    unrolled (no intrinsic: already vectorized by the caller), the zero-init vectorized.
    (The accumulators stay "global": after compaction the tile is a small stack buffer, promoted
    to registers once unrolled; an intrinsic's description only matches global buffers.)"""
    for lp in tile:
        sch.unroll(lp)
    if intrin is not None:
        name, width = intrin
        if width < lanes:
            rep, lane = sch.split(lane, [None, width])
            sch.unroll(rep)
        sch.tensorize(lane, name)
    sch.vectorize(sch.get_loops(init)[-1])


def widen_chunks(sch, acc, pairs, outer, k: list, tile: list, h, lane) -> None:
    """The int32 accumulator of int16 pair sums (primitives/pair_sums): its loops ordered (chunk
    k where more than one, the register tile's, pair h, lane), the lanes vectorized, the rest
    unrolled, zeroed before the chunks; then the pair sums computed under k (else under `outer`)."""
    sch.reorder(*k, *tile, h, lane)
    sch.vectorize(lane)  # (before the init is split off: vectorize needs one writer)
    sch.unroll(h)
    init = sch.decompose_reduction(acc, (k + tile + [h])[0])
    sch.vectorize(sch.get_loops(init)[-1])
    for lp in tile:
        sch.unroll(lp)
    sch.compute_at(pairs, k[0] if k else outer)


def finish_pairs(sch, pairs, steps: list, tile: list, lane, h, j, intrin, lanes: int) -> None:
    """The pair sums' register tile: (steps..., tile..., lane, h, j), zeroed before the steps, the
    (lane, h, j) loops tensorized with `intrin` (finish_tile)."""
    sch.reorder(*steps, *tile, lane, h, j)
    init = sch.decompose_reduction(pairs, (steps + tile + [lane])[0])
    finish_tile(sch, init, tile, lane, intrin, lanes)


def register_pair_sums(name: str, shape: Shape, lanes: int, llvm_intrinsic: str, a_vector: str) -> None:
    """Register intrinsic `name`: the int16 pair sums (primitives/pair_sums) of one step in
    `shape`, each lane's two product pairs (of 4 uint8 codes against 4 int8 weights, one side
    broadcast) summed into its two int16 lanes of C by one call of `llvm_intrinsic` (x86's
    vpmaddubsw, unsigned codes first), added to C. Exact while the pair sums fit int16
    (pair_sums.chunk_groups sees to it)."""
    from tvm.s_tir import TensorIntrin
    from tvm.script import tirx as T

    c_vector = f"int16x{lanes * 2}"
    a_shape, b_shape = ((lanes, 4), (4,)) if shape is Shape.POSITIONS else ((4,), (lanes, 4))

    def a_of(A, i, k):
        return A[i, k] if shape is Shape.POSITIONS else A[k]

    def b_of(B, i, k):
        return B[k] if shape is Shape.POSITIONS else B[i, k]

    def region(buf, dims):
        return buf[tuple(slice(0, d) for d in dims)]

    def vector(buf, dims, dtype):
        """All of `buf` as one vector of bytes; a one-group operand broadcast to every 32-bit lane."""
        if len(dims) == 2:
            return T.reinterpret(buf.vload([0, 0], dtype=f"{dtype}x{lanes * 4}"), dtype=a_vector)
        return T.reinterpret(T.broadcast(T.reinterpret(buf.vload([0], f"{dtype}x4"), dtype="int32"), lanes), dtype=a_vector)

    @T.prim_func(s_tir=True)
    def desc(
        A: T.Buffer(a_shape, "uint8", offset_factor=1),
        B: T.Buffer(b_shape, "int8", offset_factor=1),
        C: T.Buffer((lanes, 2), "int16", offset_factor=1),
    ) -> None:
        with T.sblock("root"):
            T.reads(C[0:lanes, 0:2], region(A, a_shape), region(B, b_shape))
            T.writes(C[0:lanes, 0:2])
            for i, h, j in T.grid(lanes, 2, 2):
                with T.sblock("update"):
                    vi, vh, vj = T.axis.remap("SSR", [i, h, j])
                    C[vi, vh] = C[vi, vh] + T.Cast("int16", a_of(A, vi, vh * 2 + vj)) * T.Cast("int16", b_of(B, vi, vh * 2 + vj))

    # (the signature again: TVMScript parses each prim_func from its own source)
    @T.prim_func(s_tir=True)
    def impl(
        A: T.Buffer(a_shape, "uint8", offset_factor=1),
        B: T.Buffer(b_shape, "int8", offset_factor=1),
        C: T.Buffer((lanes, 2), "int16", offset_factor=1),
    ) -> None:
        with T.sblock("root"):
            T.reads(C[0:lanes, 0:2], region(A, a_shape), region(B, b_shape))
            T.writes(C[0:lanes, 0:2])
            C[0, T.ramp(T.int32(0), 1, lanes * 2)] = C.vload([0, 0], dtype=c_vector) + T.call_llvm_pure_intrin(
                T.llvm_lookup_intrinsic_id(llvm_intrinsic), vector(A, a_shape, "uint8"), vector(B, b_shape, "int8"),
                dtype=c_vector)

    TensorIntrin.register(name, desc, impl, override=True)
    _OPS_PER_MAC[name] = 2 / (lanes * 4)
