"""Delta lists: the run-time sparse ternary format whose kernels read 8-bit relative indices.

Per output channel, the taps whose weight is +1, then those whose weight is -1, each as a list
of gaps between consecutive weight indices k (the layer's taps in the order its kernel
enumerates them: conv_layout's phase order for convs, the input index for dense), one byte a
gap. All lists follow each other in one byte stream:

    list   = head, entries             head: h = 2n + (1 if an entry is an escape) as bytes
                                       255, 255, ..., h mod 255 (n entries, n >= 0)
    entry  = g in 1..255: the next tap is at k + g          (k starts at -1)
             0: k += 255, no tap (an escape: gaps above 255 are rare at 90% zeros)

With `chains` = 2 (the pointwise kernels' form), entry i advances the k of chain i % 2: the two
chains interleave, so a walk has two independent running sums (one add a step each) instead of
one, and the gaps are between every other tap.

`starts[b]` is where channel b * CHANNEL_BLOCK's lists begin, so blocks of channels can be
walked on different cores. The stream ends in DECODE_GROUP zero bytes: the kernels decode
DECODE_GROUP entries at a time and may read that far past the last list. An escape is walked as
a tap on an input that is zero (the kernels' layouts end in zeros), so no entry is skipped and
decoding has no branch. No padding, no row table: at 90% zeros a list entry is 8 bits against
the ~5.7 bits a non-zero weight carries at the entropy bound (1.41x), and the counts add one or
two bytes a list.

The kernels keep a running k while they walk a list, which TE cannot express (a reduction has no
state carried from one step to the next), so delta_walk.py builds their loop nests directly.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .record import Weights, scalar

ESCAPE_GAP = 255  # an escape entry (0) advances k by this much without a tap
COUNT_MORE = 255  # a count byte of this value: 255 more entries, and another count byte follows
CHANNEL_BLOCK = 16  # channels per `starts` entry: the unit the kernels split over cores
DECODE_GROUP = 16  # entries the kernels decode at once (one vector of int32 offsets)


def encode_list(taps: np.ndarray, chains: int = 1) -> list[int]:
    """One list (head, entries) of sorted, distinct weight indices."""
    entries, ks = [], [-1] * chains
    for t in (int(v) for v in taps):
        while True:
            c = len(entries) % chains  # whose turn it is; too far from its k: an escape, next turn
            if t - ks[c] <= ESCAPE_GAP:
                entries.append(t - ks[c])
                ks[c] = t
                break
            entries.append(0)
            ks[c] += ESCAPE_GAP
    head = 2 * len(entries) + (0 in entries)  # the flag lets lists without escapes skip their test
    return [COUNT_MORE] * (head // COUNT_MORE) + [head % COUNT_MORE] + entries


def _count_bytes(one: list[int]) -> int:
    """Bytes of the count at the head of an encoded list."""
    return next(i for i, b in enumerate(one) if b != COUNT_MORE) + 1


def decode_list(stream: np.ndarray, ptr: int, chains: int = 1) -> tuple[np.ndarray, int]:
    """(taps, where the next list begins) of the list at `ptr`."""
    n = 0
    while stream[ptr] == COUNT_MORE:
        n, ptr = n + COUNT_MORE, ptr + 1
    n, ptr = (n + int(stream[ptr])) >> 1, ptr + 1
    entries = stream[ptr : ptr + n].astype(np.int64)
    taps = []
    for c in range(chains):
        mine = entries[c::chains]
        k = np.cumsum(np.where(mine == 0, ESCAPE_GAP, mine)) - 1
        taps.append(k[mine != 0])
    return np.sort(np.concatenate(taps)), ptr + n


@dataclass(frozen=True, eq=False)
class DeltaLists(Weights):
    """The byte stream of every channel's +1 and -1 lists, and where each block of channels
    begins in it."""

    stream: object  # uint8 [S]
    starts: object  # int32 [ceil(Co / CHANNEL_BLOCK)]
    channels: int = scalar()
    longest: int = scalar()  # entries of the longest list (its escapes add zeros: the accumulator bound)
    entries: int = scalar()  # gap entries in the stream, escapes included: what the kernels walk
    chains: int = scalar(1)  # interleaved running sums per list (encode_list)

    @classmethod
    def of(cls, codes2: np.ndarray, chains: int = 1) -> "DeltaLists":
        """codes2: [Co, K] ternary codes in the kernel's tap order."""
        stream, starts, longest, entries = [], [], 0, 0
        for c, row in enumerate(codes2):
            if c % CHANNEL_BLOCK == 0:
                starts.append(len(stream))
            for value in (1, -1):
                one = encode_list(np.flatnonzero(row == value), chains)
                n = len(one) - _count_bytes(one)
                longest, entries = max(longest, n), entries + n
                stream += one
        stream += [0] * DECODE_GROUP
        return cls(np.asarray(stream, np.uint8), np.asarray(starts, np.int32), len(codes2), longest, entries, chains)

    def lists(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per channel the (+1 taps, -1 taps), decoded (the numpy references read this)."""
        out, ptr = [], 0
        for _ in range(self.channels):
            plus, ptr = decode_list(self.stream, ptr, self.chains)
            minus, ptr = decode_list(self.stream, ptr, self.chains)
            out.append((plus, minus))
        return out


def np_signed_sums(read, w: DeltaLists) -> tuple[np.ndarray, np.ndarray]:
    """(acc_p, acc_n) [N, Co, ...] in int64: `read(taps)` sums the inputs of one tap list over
    [N, ...] (numpy reference of the kernels' walk)."""
    plus, minus = zip(*w.lists())
    return np.stack([read(t) for t in plus], axis=1), np.stack([read(t) for t in minus], axis=1)
