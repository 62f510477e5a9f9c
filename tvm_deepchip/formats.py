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
    XNOR = "xnor"  # binary weights on binary (+-1) inputs, both bit-packed: popcounts of XOR
    INT8 = "int8"  # int8 weights (or a symmetric ternary layer as int8 in {-1, 0, 1})
    BITS = "bits"  # binary weights {-a, +a}: one bit-plane, 1 bit a weight, expanded to +-1 bytes for the int8 dot product
    FLOAT = "float"  # not lowered: the layer stays in TVM's float operators

    # Print and format as the plain name (Python 3.11 made format() of a mixed-in Enum print
    # "Format.SPARSE"); repr too, so messages quoting a format ({fmt!r}) read as before.
    __str__ = str.__str__
    __format__ = str.__format__
    __repr__ = str.__repr__


# What a ternary layer runs in when nothing says otherwise (no --format, no measured choice): not a
# format but the shape rule of format_rule.py (delta lists where their walk pays, index rows
# elsewhere); a format named as the default instead applies to every ternary layer.
AUTO = "auto"
DEFAULT_TERNARY = AUTO
FALLBACK_TERNARY = Format.SPARSE  # where the default cannot run a layer exactly: every ternary layer has index rows

# A layer runs XNOR because of what it reads (binary inputs and binary weights), never by a choice:
# no other format can run such a layer, and no other layer can run in it.
BY_INPUT = (Format.XNOR,)
CHOICES = tuple(f.value for f in Format if f not in BY_INPUT)  # what a user may ask for, per layer or as the default
DEFAULT_CHOICES = (AUTO, *CHOICES)  # what --ternary-format takes
KERNEL_FORMATS = tuple(f for f in CHOICES if f != Format.FLOAT)  # the chosen ones with a primitive
TERNARY_ONLY = (Format.SPARSE, Format.DELTA, Format.PACKED, Format.DOT)  # encodings of ternary weights; int8 weights cannot use them
