"""Dot products of binary and ternary weights summed in int16 before int32: the product pairs of
x86's `vpmaddubsw` (u8 x s8, adjacent products summed into an int16 lane) added straight into
int16 accumulators, widened to int32 once a chunk of taps.

For weights of magnitude at most 1 (BinaryConnect/BWN's +-1, ternary codes) a pair sum is at
most 2 * 255 = 510, so MAX_PAIR_STEPS = 64 of them fit an int16 lane exactly. Per step of 4
channels that leaves one multiply instruction (`vpmaddubsw`) and one add (`vpaddw`) where the
int32 form also widens each step (`vpmaddwd` against ones), and on CPUs whose vector multiplies
share one pipe (AMD Zen 1-3) the multiplies bound the loop: measured on an AMD EPYC znver1 (a
register-only loop of 12 independent chains) 39.4 G multiply-accumulates/s a core, against
19.1 G for vpmaddubsw + vpmaddwd + vpaddd.

The reduction over channel groups is cut into chunks of whole groups (`chunk_groups`), each
chunk's int16 sums kept apart by pair (lane h of a step sums channels 2h and 2h+1 of its group):

    pairs[n, c, k, p, h] = sum over the chunk's groups b and taps, j < 2:
                           x[n, p + offset(k*B + b, tap), 2h + j] * w[c, k*B + b, tap, 2h + j]   (int16)
    acc[n, c, p]         = sum over k, h of pairs[n, c, k, p, h]                                (int32)

Same integers as the int32 form (every partial sum is exact), so the same reference. The dense
form (int8_dense's steps over 16 output channels, one broadcast group of 4 codes) is the same
with the channels in the lanes and one step a group (`te_dense_acc`).
"""
from __future__ import annotations

from . import roles

PAIR = 2  # products a vpmaddubsw lane sums
INT16_MAX = 2**15 - 1
MAX_CODE = 255  # uint8 codes (the operand vpmaddubsw reads unsigned)
MAX_WEIGHT = 1  # binary and ternary codes: the form's reason to exist
MAX_PAIR_STEPS = INT16_MAX // (PAIR * MAX_CODE * MAX_WEIGHT)  # 64


def chunk_of(isa, operand: str, max_weight: int, groups: int, steps_per_group: int) -> int | None:
    """chunk_groups for a kernel built for ISA class `isa` whose dot products read `operand`
    codes: None unless the class's narrow dot product is vpmaddubsw on uint8 codes (IsaClass.pair_sums)."""
    if not isa.pair_sums or operand != "uint8":
        return None
    return chunk_groups(groups, steps_per_group, max_weight)


def chunk_groups(groups: int, steps_per_group: int, max_weight: int) -> int | None:
    """Channel groups a chunk takes: the largest divisor of `groups` whose steps (each group
    `steps_per_group` taps) fit MAX_PAIR_STEPS; None where the form does not apply (weights over
    MAX_WEIGHT, or one group's taps alone too many: a kernel of more than 64 taps)."""
    if max_weight > MAX_WEIGHT or steps_per_group > MAX_PAIR_STEPS:
        return None
    limit = MAX_PAIR_STEPS // steps_per_group
    return max(b for b in range(1, groups + 1) if groups % b == 0 and b <= limit)


def te_conv_acc(xf, w, geo, positions: int, chunk: int):
    """The int32 accumulator [N, Co, positions] of int8_conv2d's dot products over the grouped
    flat layout `xf` [N, L, 4] and weights `w` [Co, Ci/4, sh, sw, KHq, KWq, 4], through int16
    pair sums of `chunk` groups (geo: the grouped geometry)."""
    from tvm import te

    group = int(xf.shape[-1])
    b = te.reduce_axis((0, chunk), name="b_pairs")
    taps = [te.reduce_axis((0, e), name=f"{a}_pairs") for a, e in
            (("kyr", geo.sh), ("kxr", geo.sw), ("kyq", geo.khq), ("kxq", geo.kwq))]
    j = te.reduce_axis((0, PAIR), name="j_pairs")

    def pair_sum(n, c, k, p, h):
        ci = k * chunk + b
        code = xf[n, p + geo.tap_offset(ci, *taps), h * PAIR + j].astype("int16")
        return te.sum(code * w[(c, ci, *taps, h * PAIR + j)].astype("int16"), axis=[b, *taps, j])

    shape = (geo.n, geo.co, geo.ci // chunk, positions, group // PAIR)
    pairs = te.compute(shape, pair_sum, name="pairs", attrs=roles.attrs(roles.PAIR_SUMS))
    k = te.reduce_axis((0, shape[2]), name="k_acc")
    h = te.reduce_axis((0, shape[4]), name="h_acc")
    return te.compute(shape[:2] + (positions,), lambda n, c, p: te.sum(pairs[n, c, k, p, h].astype("int32"), axis=[k, h]),
                      name="acc", attrs=roles.attrs(roles.ACCUMULATOR))


def te_dense_acc(xg, w, chunk: int):
    """The int32 accumulator [N, Cb*16] of int8_dense's dot products over the grouped input codes
    `xg` [N, K/4, 4] and weights `w` [Cb, K/4, 16, 4], through int16 pair sums of `chunk` groups
    (stored [N, chunk, channel, pair])."""
    from tvm import te

    cb, kg, lanes, group = (int(s) for s in w.shape)
    b = te.reduce_axis((0, chunk), name="b_pairs")
    j = te.reduce_axis((0, PAIR), name="j_pairs")
    # [N, chunk, channel, pair]: the lanes of a step (channels, pairs) innermost, as the intrinsic's
    shape = (int(xg.shape[0]), kg // chunk, cb * lanes, group // PAIR)
    pairs = te.compute(shape, lambda n, k, c, h: te.sum(
        xg[n, k * chunk + b, h * PAIR + j].astype("int16") * w[c // lanes, k * chunk + b, c % lanes, h * PAIR + j].astype("int16"),
        axis=[b, j]), name="pairs", attrs=roles.attrs(roles.PAIR_SUMS))
    k = te.reduce_axis((0, shape[1]), name="k_acc")
    h = te.reduce_axis((0, shape[3]), name="h_acc")
    return te.compute((shape[0], shape[2]), lambda n, c: te.sum(pairs[n, k, c, h].astype("int32"), axis=[k, h]),
                      name="acc", attrs=roles.attrs(roles.ACCUMULATOR))
