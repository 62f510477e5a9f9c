"""Delta lists: the run-time sparse ternary format whose kernels read 8-bit relative indices.

Per output channel, the taps whose weight is +1, then those whose weight is -1, each as a list
of gaps between consecutive weight indices k (the layer's taps in the order its kernel
enumerates them: conv_layout's phase order for convs, the input index for dense), one byte a
gap. All lists follow each other in one byte stream:

    list   = head, entries             head: h = 2n + (1 if an entry is an escape) as bytes
                                       255, 255, ..., h mod 255 (n entries, n >= 0)
    entry  = g in 1..255: the next tap is at k + g          (k starts at -1)
             0: k += 255, no tap (an escape: gaps above 255 are rare at 90% zeros)

The pointwise kernels' form (`pad` > 0) differs in four ways, each to keep their scalar loop
short and free of tests: the list's taps are cut into `chains` runs of (nearly) equal counts,
one per running sum, and entry i advances the k of chain i % chains (the walk's chains add in
parallel, and a chain's gaps span one tap, as in a single list); k counts positions of a slotted
input, which holds a zero at every multiple of SLOT and the inputs in between (input t at
slotted(t)); chain 0's k starts at 0 and chain c's at SLOT times the byte c of the list's
`chains - 1` start bytes (after the head): zero slots, at most 254 below the run's first tap; a
gap above 255 hops to the next zero slot first (an ordinary entry: the walk reads that zero);
and a chain shorter than the others starts with zero entries (reads of its start slot), so the
chains end together and a list is a multiple of `pad` entries: no remainder, no test per entry.
(Interleaving the chains over one list instead, entry i the i-th tap, made a chain's gaps span
`chains` taps: at 95% zeros 4 chains hopped on a fifth of their entries, and AlexNet's fc1 walked
slower than the index rows, 555 against 505 us on one core; cut into runs, 1-2 % more entries.)

`starts[b]` is where channel b * CHANNEL_BLOCK's lists begin, so blocks of channels can be
walked on different cores (uint16 where the stream allows). The spatial form's stream ends in
as many zero bytes as its last list's decode reads past it (its kernels decode DECODE_GROUP
entries at a time: up to DECODE_GROUP - 1 bytes). An escape is walked as
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
SLOT = 255  # the pointwise form's input holds a zero every SLOT positions (its hops land there)
COUNT_MORE = 255  # a count byte of this value: 255 more entries, and another count byte follows
CHANNEL_BLOCK = 16  # channels per `starts` entry: the unit the kernels split over cores
DECODE_GROUP = 16  # entries the kernels decode at once (one vector of int32 offsets)


def encode_list(taps: np.ndarray, chains: int = 1, pad: int = 0) -> list[int]:
    """One list (head, entries) of sorted, distinct weight indices: the spatial form (pad 0, one
    chain) or the pointwise form (slotted positions, `chains` running sums, padded to `pad`)."""
    starts = []
    if pad:
        starts, entries = _pointwise_entries(slotted(np.asarray(taps, np.int64)), chains, pad)
        flagged = False
    else:
        assert chains == 1, "the spatial form has one running sum"
        entries = _escaped_entries(taps)
        flagged = 0 in entries
    return head_bytes(len(entries), flagged) + starts + entries


def head_bytes(n: int, flagged: bool = False) -> list[int]:
    """A list's head: h = 2n + flag (the flag lets lists without escapes skip their test) as
    bytes 255, 255, ..., h mod 255."""
    head = 2 * n + flagged
    return [COUNT_MORE] * (head // COUNT_MORE) + [head % COUNT_MORE]


def _escaped_entries(taps) -> list[int]:
    """The spatial form: gaps from k = -1; a gap above 255 takes escapes (0: k += 255, no tap)."""
    entries, k = [], -1
    for t in (int(v) for v in taps):
        while t - k > ESCAPE_GAP:
            entries.append(0)
            k += ESCAPE_GAP
        entries.append(t - k)
        k = t
    return entries


def slotted(t):
    """Where input t sits in the pointwise form's slotted input, which holds a zero every SLOT
    positions (0, 255, 510, ...) and the inputs in between (numpy arrays or ints)."""
    return t + t // (SLOT - 1) + 1


def unslotted(j):
    """The input at slotted position j (j not a multiple of SLOT)."""
    return j - j // SLOT - 1


def slotted_length(length: int) -> int:
    """Positions of the slotted input of `length` inputs."""
    return int(slotted(length - 1)) + 1 if length else 1


def _run(targets, k: int) -> list[int]:
    """Entries that reach `targets` (slotted positions) in turn from k: a gap above 255 first hops
    to the next zero slot (at most 255 away): an ordinary entry, so the walk needs no escape test."""
    entries = []
    for t in (int(v) for v in targets):
        while t - k > ESCAPE_GAP:
            slot = next_zero_slot(k)
            entries.append(slot - k)
            k = slot
        entries.append(t - k)
        k = t
    return entries


def next_zero_slot(k: int) -> int:
    """The first zero slot (a multiple of SLOT) past slotted position k: at most 255 on, where a
    long gap hops first."""
    return (k // SLOT + 1) * SLOT


def _pointwise_entries(targets, chains: int, pad: int) -> tuple[list[int], list[int]]:
    """(start bytes of chains 1.., entries): the taps cut into `chains` runs of nearly equal
    counts, each reached from its start slot, led by zero entries to the same length, a multiple
    of pad / chains, and interleaved (entry i: chain i % chains)."""
    runs = np.array_split(np.asarray(targets, np.int64), chains)
    starts = [0] + [min(int(r[0]) // SLOT, 255) if len(r) else 0 for r in runs[1:]]
    walks = [_run(r, SLOT * s) for r, s in zip(runs, starts)]
    length = max(len(w) for w in walks)
    while (chains * length) % pad:
        length += 1
    walks = [[0] * (length - len(w)) + w for w in walks]
    return starts[1:], [w[i] for i in range(length) for w in walks]


def read_head(stream, ptr: int) -> tuple[int, bool, int, int]:
    """(entries n, whether the list holds escapes, bytes of the head, where the head ends) of the
    list at `ptr` (its entries begin there, or after the pointwise form's chains - 1 start bytes)."""
    head, start = 0, ptr
    while stream[ptr] == COUNT_MORE:
        head, ptr = head + COUNT_MORE, ptr + 1
    head, ptr = head + int(stream[ptr]), ptr + 1
    return head >> 1, bool(head & 1), ptr - start, ptr


def decode_list(stream: np.ndarray, ptr: int, chains: int = 1, pad: int = 0) -> tuple[np.ndarray, int]:
    """(taps, where the next list begins) of the list at `ptr`."""
    n, escapes, _, ptr = read_head(stream, ptr)
    if not pad:  # a zero entry: an escape
        entries = stream[ptr : ptr + n].astype(np.int64)
        k = np.cumsum(np.where(entries == 0, ESCAPE_GAP, entries)) - 1
        return k[entries != 0], ptr + n
    starts = [0] + [SLOT * int(v) for v in stream[ptr : ptr + chains - 1]]
    ptr += chains - 1
    entries = stream[ptr : ptr + n].astype(np.int64)
    taps = []
    for c in range(chains):  # slotted positions; zero slots (pads, hops) read no input
        k = starts[c] + np.cumsum(entries[c::chains])
        taps.append(unslotted(k[k % SLOT != 0]))
    return np.sort(np.concatenate(taps)), ptr + n


@dataclass(frozen=True, eq=False)
class DeltaLists(Weights):
    """The byte stream of every channel's +1 and -1 lists, and where each block of channels
    begins in it."""

    stream: object  # uint8 [S]
    starts: object  # uint16 or int32 [ceil(Co / CHANNEL_BLOCK)]
    channels: int = scalar()
    longest: int = scalar()  # entries of the longest list (its escapes add zeros: the accumulator bound)
    entries: int = scalar()  # gap entries in the stream, escapes included: what the kernels walk
    chains: int = scalar(1)  # running sums per list, one per run of its taps (encode_list)
    pad: int = scalar(0)  # the pointwise form: lists padded to multiples of this (0: the spatial form)

    @classmethod
    def of(cls, codes2: np.ndarray, chains: int = 1, pad: int = 0) -> "DeltaLists":
        """codes2: [Co, K] ternary codes in the kernel's tap order."""
        stream, starts, longest, entries, reach = [], [], 0, 0, 0
        for c, row in enumerate(codes2):
            if c % CHANNEL_BLOCK == 0:
                starts.append(len(stream))
            for value in (1, -1):
                one = encode_list(np.flatnonzero(row == value), chains, pad)
                n, _, head, _ = read_head(one, 0)
                longest, entries = max(longest, n), entries + n
                reach = len(stream) + head + -(-n // DECODE_GROUP) * DECODE_GROUP  # what its decode reads up to
                stream += one
        stream += [0] * (0 if pad else max(reach - len(stream), 0))  # the pointwise walk reads whole lists only
        where = np.asarray(starts, np.uint16 if len(stream) < 2**16 else np.int32)
        return cls(np.asarray(stream, np.uint8), where, len(codes2), longest, entries, chains, pad)

    def lists(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per channel the (+1 taps, -1 taps), decoded (the numpy references read this)."""
        out, ptr = [], 0
        for _ in range(self.channels):
            plus, ptr = decode_list(self.stream, ptr, self.chains, self.pad)
            minus, ptr = decode_list(self.stream, ptr, self.chains, self.pad)
            out.append((plus, minus))
        return out


def np_signed_sums(read, w: DeltaLists) -> tuple[np.ndarray, np.ndarray]:
    """(acc_p, acc_n) [N, Co, ...] in int64: `read(taps)` sums the inputs of one tap list over
    [N, ...] (numpy reference of the kernels' walk)."""
    plus, minus = zip(*w.lists())
    return np.stack([read(t) for t in plus], axis=1), np.stack([read(t) for t in minus], axis=1)
