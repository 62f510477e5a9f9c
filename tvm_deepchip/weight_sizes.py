"""How big a ternary layer is: one size function per weight form, each named for what it counts.

"How big is a sparse layer" has several true answers because there are several forms; each has
its one function here, and the quantizer's report, the compression table
(scripts/compression_table.py) and the kernels' run-time byte count (primitives/*.weight_bytes,
the compile report's weight_bytes) all call these.

What the kernels read at run time (primitives/), in bytes:
  index_rows_bytes   the sparse kernels' balanced offset rows and row tables (sparse_rows.pack_rows:
                     uint16 offsets where they fit, else int32; int32 row table), as stored
  bit_planes_bytes   the packed convs' two uint32 bit-planes per output channel: 2 bits a
                     weight, each plane padded to whole 32-bit words
  bit_words_bytes    the words of the bit-plane dot product (bit_dot): 2 bits a ternary weight, 1
                     a binary one, channels padded to 16 and inputs to 4
The stored artifact (encodings.py), in bytes:
  stored_bytes       encodings.encode's stream of the signs, header included
Ideal forms, bits per weight, no padding (the quantizer's report: what a format costs at best):
  TWO_BIT_CODES_BITS    2-bit codes (the report's "packed")
  offset_lists_bits     per output channel a list of +1 and a list of -1 input offsets of
                        ceil(log2 K) bits each plus two 16-bit lengths (the report's "sparse"):
                        (1 - s) * ceil(log2 K) + 32 / K
A form no kernel reads yet (the compression table sizes the gap to the paper with it):
  gap8_lists_bytes   per channel and sign the gaps between taps as uint8 (255: escape), padded to
                     the longest list
"""
from __future__ import annotations

import math

import numpy as np

from .encodings import encoded_bits, list_gaps

TWO_BIT_CODES_BITS = 2.0
PLANES = 2  # bit-planes per output channel: +1 taps, -1 taps
WORD_BITS = 32  # taps per bit-plane word (uint32)
GAP8_ESCAPE = 255


def index_rows_bytes(rows_p: np.ndarray, map_p: np.ndarray, rows_n: np.ndarray, map_n: np.ndarray) -> int:
    """Run-time bytes of the sparse kernels' tables (the +1 and -1 rows and row maps, as packed)."""
    return int(rows_p.nbytes + map_p.nbytes + rows_n.nbytes + map_n.nbytes)


def bit_planes_bytes(out_channels: int, taps: int) -> int:
    """Run-time bytes of the packed kernels' planes: [Co, 2, ceil(K / 32)] uint32."""
    return out_channels * PLANES * math.ceil(taps / WORD_BITS) * (WORD_BITS // 8)


def bit_words_bytes(out_channels: int, k: int, planes: int = PLANES) -> int:
    """Run-time bytes of the bit-plane dot product's words (bit_dot): [Co/16, K/4, planes] uint64
    (ternary weights 2 planes, binary ones 1)."""
    return math.ceil(out_channels / 16) * math.ceil(k / 4) * planes * 8


def stored_bytes(signs, encoding: str, param: int | None = None) -> int:
    """Bytes of the stored encoding of a sign tensor (encodings.encode's output, header included)."""
    return encoded_bits(signs, encoding, param) // 8


def offset_lists_bits(sparsity: float, fan_in: int) -> float:
    """Bits per weight of ideal bit-packed offset lists at fan-in K (no kernel reads this form)."""
    idx = max(math.ceil(math.log2(max(fan_in, 2))), 1)
    return (1.0 - sparsity) * idx + 32.0 / fan_in


def gap8_lists_bytes(signs2: np.ndarray) -> int:
    """Bytes of uint8 gap lists of [Co, K] signs: per sign, Co lists padded to the longest."""
    total = 0
    for sign in (1, -1):
        rows, _ = np.nonzero(signs2 == sign)
        _, gaps = list_gaps(signs2, sign)
        fields = np.bincount(rows, weights=gaps // GAP8_ESCAPE + 1, minlength=signs2.shape[0])
        total += signs2.shape[0] * max(1, int(fields.max()))
    return total
