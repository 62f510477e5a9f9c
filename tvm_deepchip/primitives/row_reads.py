"""Reading the input codes of a layout copy, one pixel expression per lane of a vectorized loop:
every s-th pixel of a row through uint16 pairs, and a pooled pixel as the max of its window in
the pool's input (a conv that reads a max pool's input: passes/conv_input_fusion), also as a TE
expression (window_max: the copies built by TE computes).

Why pairs: LLVM scalarizes the stride-2 byte loads of a vectorized loop (one pinsrb a code:
ResNet-44's layer2.0.conv1 copy); read as uint16 pairs, every second pixel is one contiguous
vector load and a truncation (vpmovwb, xtn). Shared by the delta convs' row tasks (delta_rows)
and the int8 convs' grouped layout (grouped_layout).
"""
from __future__ import annotations

from .int8_max_pool import EIGHT_BITS


def pairs_of(T, x):
    """x's codes [N, C, H, W] as uint16 pairs of neighbouring pixels, inside an IRBuilder (None
    where its rows are odd, or its codes not 8-bit)."""
    n, c, h, w = (int(v) for v in x.shape)
    if w % 2 or x.dtype not in EIGHT_BITS:
        return None
    return T.decl_buffer((n * c * h * w // 2,), "uint16", data=x.data)


def code(x, pairs, n, c, y, q, s: int, o: int):
    """The code of pixel s * q + o of row y (x's rows): from the pair holding it, where `pairs`
    is a buffer (s == 2; the even pixel is the low byte, little-endian x86 and aarch64)."""
    if pairs is None:
        return x[n, c, y, s * q + o]
    pair = ((n * x.shape[1] + c) * x.shape[2] + y) * (x.shape[3] // 2) + q + o // 2
    return (pairs[pair] >> (8 * (o % 2))).astype(x.dtype)


def pooled_reader(T, x, pool, s: int):
    """read(n, c, y, q, o): the code of the pooled pixel (y, s * q + o), x being the input of
    max pool `pool` (int8_max_pool.Pool): the max of its window, whose columns (s * q + o) *
    stride + dx are read as pairs where that is every second pixel."""
    return _window_max(x, pool, pairs_of(T, x) if s * pool.stride[1] == 2 else None, s)


def window_max(x, pool):
    """pixel(n, c, y, xx): the pooled code at (y, xx) as one TE expression over x, the pool's
    input (te_flat's and int8_conv2d.image_read's `pixel`: a TE compute reads no pairs)."""
    read = _window_max(x, pool, None, 1)
    return lambda n, c, y, xx: read(n, c, y, xx, 0)


def _window_max(x, pool, pairs, s: int):
    """read(n, c, y, q, o): the max of the window of pooled pixel (y, s * q + o), its codes read
    through `pairs` where that is a buffer (code)."""
    from functools import reduce

    from tvm import tirx

    (kh, kw), (sh, sw) = pool.kernel, pool.stride

    def read(n, c, y, q, o):
        return reduce(tirx.max, [code(x, pairs, n, c, y * sh + dy, q, s * sw, o * sw + dx)
                                 for dy in range(kh) for dx in range(kw)])

    return read
