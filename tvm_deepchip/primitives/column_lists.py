"""Column lists: the delta lists of a dense layer (or a conv of one output position) by input,
for a walk that skips the inputs that are zero.

The pointwise delta walk (delta_walk) gathers, per output channel, the input under each of its
taps: every tap costs a gap byte, an input byte and an add, whatever the input holds. After a
ReLU or a Clip(0, ...) half of the codes or more are zero (SVHN ConvNet's conv7 reads 51% zeros,
the bench's input), and a zero code adds nothing to either sum. Here the lists run the other way:
per input k, the output channels its +1 weights feed, then those its -1 weights feed, and the walk
takes the inputs one by one, skips a zero, and adds a non-zero one into the accumulators of the
channels in its lists (a scatter: a gap byte and a read-modify-write a tap).

    list   = head, entries       head: the delta lists' (2n as bytes 255, 255, ..., 2n mod 255)
    entry  = a gap in 1..255: running sum e % CHAINS moves on by it and adds the input there

Positions are slotted channels (delta_lists.slotted: a spare accumulator every SLOT places), the
running sums start on spare 0, and a gap above 255 hops to the next spare first (an ordinary
entry: the walk adds the input to a spare, which the epilogue never reads). The sums take the
list's channels in turn, whichever sum's turn it is, so the chains need no start bytes and no
padding: a list is its taps and hops, and its head (SVHN ConvNet's conv7: 170.3 KB against the
delta lists' 173.2). Where they take more bytes than the delta lists (more inputs than about
four times the channels: the heads), the layer keeps those (`pick`).

Measured (AMD EPYC znver4, 2 cores; whole models, the two builds in one process taking turns,
30 rounds, medians of paired ratios, same outputs): SVHN ConvNet at 90% zeros 0.949x the time
(AVX-512 VNNI build), 0.961x (AVX2 build); AlexNet (fc1, fc2) 0.922x / 0.962x. One core, one
sign's lists of conv7's shape (scripts/peak/zero_skip_forms.c): 0.70-0.75x the gather walk's
time with half the inputs zero (0.81x in a later run), 1.07-1.5x with none (a noisy host).

Each core takes a share of the inputs (`starts`: where each share begins in the stream) into
accumulators of its own; the shares' sums are added before the epilogue.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .delta_lists import SLOT, head_bytes, next_zero_slot, read_head, slotted, unslotted
from .record import Weights, scalar

CHAINS = 4  # running sums a list's entries take in turn (the walk's independent adds)
GAP = 255  # the largest gap an entry holds


@dataclass(frozen=True, eq=False)
class ColumnLists(Weights):
    """The byte stream of every input's +1 and -1 channel lists, and where each core's share of
    the inputs begins in it."""

    stream: object  # uint8 [S]
    starts: object  # int32 [parts + 1]: the stream offset of input k_t = t * K // parts's lists
    channels: int = scalar()
    inputs: int = scalar()
    parts: int = scalar(1)
    longest: int = scalar()  # taps of the channel with most (of one sign): the accumulator bound
    entries: int = scalar()  # entries in the stream, hops included

    @classmethod
    def of(cls, codes2: np.ndarray, parts: int = 1) -> "ColumnLists":
        """codes2: [Co, K] ternary codes, K in the layer's input order."""
        co, k = codes2.shape
        stream, offsets, entries = [], [], 0
        for j in range(k):
            offsets.append(len(stream))
            for value in (1, -1):
                one = _entries(slotted(np.flatnonzero(codes2[:, j] == value)))
                entries += len(one)
                stream += head_bytes(len(one)) + one
        offsets.append(len(stream))
        starts = [offsets[t * k // parts] for t in range(parts)] + [len(stream)]
        longest = int(max((codes2 == 1).sum(1).max(initial=0), (codes2 == -1).sum(1).max(initial=0)))
        return cls(np.asarray(stream, np.uint8), np.asarray(starts, np.int32), co, k, parts, longest, entries)

    def lists(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per channel the (+1 inputs, -1 inputs), decoded: the delta lists' `lists` (the numpy
        references read this)."""
        taps = [([], []) for _ in range(self.channels)]
        ptr = 0
        for j in range(self.inputs):
            for sign in range(2):
                n, _, _, ptr = read_head(self.stream, ptr)
                for c in _decode(self.stream[ptr:ptr + n]):
                    taps[c][sign].append(j)
                ptr += n
        return [(np.asarray(p, np.int64), np.asarray(m, np.int64)) for p, m in taps]


def _entries(targets) -> list[int]:
    """The entries reaching `targets` (sorted slotted positions), the running sums in turn."""
    at, out, pending = [0] * CHAINS, [], [int(t) for t in targets]
    i = 0
    while i < len(pending):
        chain = len(out) % CHAINS
        gap = pending[i] - at[chain]
        if gap > GAP:  # hop to the next spare
            gap = next_zero_slot(at[chain]) - at[chain]
        else:
            i += 1
        out.append(gap)
        at[chain] += gap
    return out


def _decode(entries) -> list[int]:
    """The channels a list's entries add to (hops left out)."""
    at, out = [0] * CHAINS, []
    for e, gap in enumerate(int(g) for g in entries):
        at[e % CHAINS] += gap
        if at[e % CHAINS] % SLOT:
            out.append(int(unslotted(at[e % CHAINS])))
    return out


def zero_skipping(layer) -> bool:
    """Whether the layer's input codes are zero where its values are (uint8 codes of zero point 0:
    a ReLU's or a Clip(0, ...)'s output, half zeros or more): the inputs the column walk skips.
    No where the input is not known (the compression table packs signs alone)."""
    return str(getattr(layer, "in_dtype", "")) == "uint8" and int(getattr(layer, "in_zero_point", -1)) == 0


def pick(codes2: np.ndarray, layer, by_channel, batch: int = 1):
    """The column lists of codes2 ([Co, K]) where the layer's input skips zeros and they take no
    more bytes than `by_channel()`'s lists (the delta walk's), else those; split in ROW_PARTS
    shares where the taps (over `batch` images) reach the delta walk's threshold for two cores."""
    from ..parallel_costs import PARALLEL_MIN_GATHERS, ROW_PARTS

    other = by_channel()
    if not zero_skipping(layer):
        return other
    parts = ROW_PARTS if int(np.count_nonzero(codes2)) * batch >= PARALLEL_MIN_GATHERS else 1
    columns = ColumnLists.of(codes2, parts)
    return columns if columns.nbytes() <= other.nbytes() else other
