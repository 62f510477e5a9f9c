"""The weight formats a quantized layer can run in: the one spelling of the format vocabulary.

A str enum, so a Format is equal to its name ("sparse" == Format.SPARSE) and every place that
stores or prints a format (CLI arguments, formats.json, the compile report) keeps plain strings.
"""
from __future__ import annotations

import enum


class Format(str, enum.Enum):
    SPARSE = "sparse"  # ternary: balanced index rows of the +1 and -1 taps (sparse_rows)
    DELTA = "delta"  # ternary: per channel and sign, the gaps between taps as bytes (delta_lists)
    PACKED = "packed"  # ternary: two bit-planes, 2 bits per weight
    DOT = "dot"  # ternary dense: two 0/1 int8 planes through the int8 dot product (small layers)
    INT8 = "int8"  # int8 weights (or a symmetric ternary layer as int8 in {-1, 0, 1})
    FLOAT = "float"  # not lowered: the layer stays in TVM's float operators

    # Print and format as the plain name (Python 3.11 made format() of a mixed-in Enum print
    # "Format.SPARSE"); repr too, so messages quoting a format ({fmt!r}) read as before.
    __str__ = str.__str__
    __format__ = str.__format__
    __repr__ = str.__repr__


# What a ternary layer runs in when nothing says otherwise (no --format, no measured choice): the
# uint16 index rows. The delta lists read a third of their bytes (1.43-1.50x the entropy bound at
# 90% zeros) but were 0.76-1.06x their speed on the benchmark networks, measured in one run with
# the peers (docs/format_ab: ResNet-44 and AlexNet slower), so they are a choice, not the default.
DEFAULT_TERNARY = Format.SPARSE

CHOICES = tuple(f.value for f in Format)  # what a user may ask for, per layer or as the default
KERNEL_FORMATS = tuple(f.value for f in Format if f is not Format.FLOAT)  # the ones with a primitive
TERNARY_ONLY = (Format.SPARSE, Format.DELTA, Format.PACKED, Format.DOT)  # encodings of ternary weights; int8 weights cannot use them
