"""Ternary conv2d with the weights compiled into the loop body: DeepChip's adds, no index read.

The weights are constants of the compiled model, so the kernel can be specialised to them: for
each step of output positions and each group of G output channels, one straight-line block visits
the group's non-zero columns (input channel and tap, in order of input offset), loads the input
vector of that column once and adds it to the +1 or -1 accumulator of every channel of the group
that has a non-zero weight there:

    for each column (ci, ky, kx) with a non-zero in the group:     (unrolled at compile time)
        v = xf[p : p + lanes + offset(ci, ky, kx)]                   one load
        acc_p[c] += v   for c in the group with w[c, ci, ky, kx] = +1 (registers)
        acc_n[c] += v   for c in the group with w[c, ci, ky, kx] = -1
    then the shared epilogue of each channel, in registers.

Against the delta lists' walk (ternary_conv2d_delta), per vector of positions: no list decode, no
loop exit per list, and one load per column shared by the group's channels instead of one load
per non-zero (a column of 8 channels at 90% zeros holds 0.8 non-zeros; the loads are what bound
the walk on a 512-bit machine, whose 512-bit loads at arbitrary offsets split cache lines). The
price is code: about one instruction per non-zero weight and one per column, which the format
rule (format_rule.py) keeps to layers whose code stays small (a ResNet-44 layer: ~2 KB).

G = the channels whose two accumulators fill half the vector registers (AVX-512 and NEON: 8,
AVX2: 4). Output positions as in the other convs: flat (p = oy * Wq + ox, border columns
computed and cropped) or rows; every layout of conv_layout, every stride and padding.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..formats import Format
from ..parallel_costs import PARALLEL_MIN_LANES
from . import conv_layout, requantize, roles
from .conv_layout import ConvGeometry, acc_dtype, np_flat, space, te_flat, te_output
from .record import Primitive, Site, Weights, rule_of, scalar

STEM = "ternary_conv2d_unrolled"
RULE = rule_of(STEM)
# bytes of machine code per instruction, measured on this kernel's x86 assembly (AVX-512 build of
# ResNet-44's layer1.0.conv1: vpaddw zmm, zmm and the vpmovzxbw/vmovdqu column loads with their
# displacements): what the compile report counts as the bytes the kernel reads for its weights
CODE_BYTES_PER_INSTRUCTION = 6
REPORTED_GROUP = 8
# Code and compile time grow with the non-zero weights: one layer of 14.6 K built in 11 s here (of
# 3.7 K in 1.8 s), and the gain is on small layers (format_rule.py). Above this, refused.
MAX_WEIGHTS = 16_384


def fits(layer) -> bool:
    """Whether the layer's non-zero weights are few enough to compile into code."""
    return int(np.count_nonzero(layer.codes)) <= MAX_WEIGHTS


@dataclass(frozen=True, eq=False)
class UnrolledWeights(Weights):
    """No weight argument: the codes become the kernel's instructions."""

    codes: np.ndarray = scalar()  # [Co, Ci * KH * KW] in {-1, 0, 1}
    offsets: np.ndarray = scalar()  # [Ci * KH * KW] flat input offset of each tap

    def columns(self, lo: int, group: int):
        """Channel group [lo, lo + group): (offset, +1 channels, -1 channels) of each non-zero
        column, in order of offset."""
        block = self.codes[lo:lo + group]
        out = []
        for t in np.argsort(self.offsets, kind="stable"):
            plus = [lo + int(c) for c in np.flatnonzero(block[:, t] > 0)]
            minus = [lo + int(c) for c in np.flatnonzero(block[:, t] < 0)]
            if plus or minus:
                out.append((int(self.offsets[t]), plus, minus))
        return out

    def longest(self) -> int:
        return int(max((self.codes > 0).sum(1).max(initial=0), (self.codes < 0).sum(1).max(initial=0)))

    def nbytes(self) -> int:
        """Its code: one instruction per non-zero weight and per column of each group (of
        REPORTED_GROUP channels: the AVX-512 and NEON blocks; AVX2's of 4 load ~30% more columns)."""
        cols = sum(len(self.columns(lo, REPORTED_GROUP)) for lo in range(0, len(self.codes), REPORTED_GROUP))
        return CODE_BYTES_PER_INSTRUCTION * (int(np.count_nonzero(self.codes)) + cols)


def group_of(isa) -> int:
    """Channels per block: two accumulators each in half the register file."""
    return max(1, isa.vector_registers // 4)


def pack(layer, geo: ConvGeometry, operand=None) -> UnrolledWeights:
    if not fits(layer):
        raise InputError(f"layer {layer.name!r}: {int(np.count_nonzero(layer.codes))} non-zero weights; the unrolled "
                         f"form compiles one instruction per weight, at most {MAX_WEIGHTS}")
    return UnrolledWeights(layer.codes.reshape(geo.co, -1).astype(np.int8), geo.tap_offsets().reshape(-1))


@dataclass(frozen=True)
class _Positions:
    outer: tuple  # extents of the loops over steps
    lanes: int  # positions per step (one vector)
    base: object  # (outer vars, lane) -> flat input offset of that output position
    out_index: object  # (outer vars, lane) -> output position indices


def _positions(geo: ConvGeometry, isa) -> _Positions:
    if geo.flat:
        lanes = min(isa.vector_bytes // 2, geo.out_flat)  # int16 lanes: a power of two dividing out_flat
        return _Positions((geo.out_flat // lanes,), lanes, lambda o, v: o[0] * lanes + v,
                          lambda o, v: (o[0] * lanes + v,))
    return _Positions((geo.ho,), geo.wo, lambda o, v: o[0] * geo.wq + v, lambda o, v: (o[0], v))


def compute(x, w: UnrolledWeights, consts, site: Site):
    """TE definition. x: [N, Ci, H, W] 8-bit codes; w: the codes the body is generated from;
    consts: the epilogue's (applied in registers, per channel)."""
    from tvm import te

    geo = site.geo
    xf = te_flat(x, geo, site.zp, widen=site.taps)
    pos = _positions(geo, site.isa)
    acc = acc_dtype(x.dtype, w.longest())
    work = int(np.count_nonzero(w.codes)) * int(np.prod(space(geo))) * geo.n
    out_shape = (geo.n, geo.co, *space(geo))
    y = te.extern([out_shape], [xf, *consts],
                  lambda ins, outs: _body(ins, outs[0], w, group_of(site.isa), pos, acc, work >= PARALLEL_MIN_LANES,
                                          site.epi),
                  dtype=[site.epi.out_dtype], name=roles.EPILOGUE_NAME, attrs=roles.epilogue_attrs(RULE))
    return te_output(y, geo)


def _body(ins, out, w: UnrolledWeights, group: int, pos: _Positions, acc: str, parallel: bool, epi):
    from tvm.script.ir_builder import IRBuilder
    from tvm.tirx.script import builder as T

    x, *consts = ins
    n_img, co = int(out.shape[0]), int(out.shape[1])
    groups = [(lo, w.columns(lo, group)) for lo in range(0, co, group)]
    with IRBuilder() as ib:
        with T.serial(0, n_img) as n:
            loops = [(T.parallel if parallel and i == 0 else T.serial)(0, int(e)) for i, e in enumerate(pos.outer)]
            outer = [f.__enter__() for f in loops]
            for lo, columns in groups:
                chans = range(lo, min(lo + group, co))
                accs = {(c, s): T.alloc_buffer((pos.lanes,), acc, scope="global") for c in chans for s in (0, 1)}
                with T.vectorized(0, pos.lanes) as v:  # one loop: the block is straight-line code
                    for buf in accs.values():
                        T.buffer_store(buf, _zero(acc), [v])
                    for offset, plus, minus in columns:
                        tap = x[n, pos.base(outer, v) + offset].astype(acc)
                        for sign, chs in ((0, plus), (1, minus)):
                            for c in chs:
                                buf = accs[(c, sign)]
                                T.buffer_store(buf, buf[v] + tap, [v])
                    for c in chans:
                        value = requantize.te_value(epi, consts, c, accs[(c, 0)][v], accs[(c, 1)][v])
                        T.buffer_store(out, value, [n, c, *pos.out_index(outer, v)])
            for f in reversed(loops):
                f.__exit__(None, None, None)
    return ib.get()


def _zero(dtype: str):
    from tvm import tirx

    return tirx.const(0, dtype)


def reference(qx: np.ndarray, w: UnrolledWeights, site: Site) -> np.ndarray:
    """numpy: each channel's +1 and -1 taps summed in int64 over the same flat layout."""
    geo = site.geo
    xf = np_flat(qx, geo, site.zp).astype(np.int64)
    oy, ox = np.meshgrid(np.arange(geo.ho), np.arange(geo.wo), indexing="ij")
    win = xf[:, geo.base(oy, ox).reshape(-1)[:, None] + w.offsets[None, :]]  # [N, Ho*Wo, taps]
    acc_p = np.einsum("npt,ct->ncp", win, (w.codes > 0).astype(np.int64))
    acc_n = np.einsum("npt,ct->ncp", win, (w.codes < 0).astype(np.int64))
    return requantize.np_apply(site.epi, acc_p, acc_n, channel_axis=1).reshape(geo.out_shape())


PRIMITIVE = Primitive("conv2d", Format.UNROLLED, STEM, "ternary", conv_layout.geometry, pack, compute, reference)
