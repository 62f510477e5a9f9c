"""The default kernel format of a ternary layer, from its shape and the target's ISA class: the
delta lists where their walk pays for its decode, the index rows elsewhere; on AVX-512, bit-planes
through the dot product for dense layers and convs of few output positions whose rows are small;
on AVX2, byte planes through the dot product for dense layers of up to 2^18 weights.

A delta list is decoded once per walk (a prefix sum of its gaps, then tap offsets: about one
vector op an entry) and then read once per step of output positions; index rows need no decode.
So where a list is walked over few positions, or the layer's rows are small enough to stay in
cache, the rows are faster, and where a layer's lists are walked over many positions or its
weights stream through the caches, the delta lists, at a third of the bytes, are as fast or
faster. Measured whole-model, 2 threads, both formats taking turns (Intel Xeon, AVX-512 and AVX2
builds; docs/format_ab): the bundled digits model (4x4 and smaller maps) 0.81-0.92x the rows with
every layer in delta, the MLP's 512x512 layer 0.82-0.89x; SVHN ConvNet, ResNet-44 and AlexNet
0.93-1.17x, within the machine's run-to-run spread of the rows. A measured choice
(format_choice.py, formats.json) or --format overrides this rule, layer by layer.

Tried and not kept (commit dfab2fe, reverted): convs with the weights compiled into the kernel's
code (per step of positions and group of 8 channels, one straight-line block: each non-zero
column loaded once and added to the accumulators of the group's channels there; no index read, no
decode). Each layer alone it was faster (AMD EPYC znver4, one core, fastest of 9 x 50 runs):
ResNet-44's ternary layers 259 -> 230 us, the digits model's convs 29 -> 19.6 us, SVHN ConvNet's
conv2-6 87 -> 79 us. In whole models it was not (scripts/bench.py --baseline-format unrolled, 2
threads, 50 runs x 5 blocks, in turns): AVX-512 build, SVHN 0.214 ms default vs 0.251 unrolled,
ResNet-44 0.422 vs 0.422, digits 0.035 vs 0.034, LeNet 0.018 vs 0.018; AVX2 build ResNet-44 0.588
vs 0.535, the others even or slower. Its code (6 bytes a non-zero weight; 360 KB for the digits
model, whose 4x4 maps run each block once a call) is fetched cold on every call in a model, while
a layer timed alone runs from warm caches; whole-model compiles also took 5-12x longer (ResNet-44
38.5 s instead of 8.4).
"""
from __future__ import annotations

import numpy as np

from . import primitives
from .formats import Format
from .primitives import conv_layout, int8_conv2d, packed_windows, ternary_conv2d_delta
from .weight_sizes import bit_words_bytes

# A spatial walk over fewer positions than this does about as many decode ops as adds. It was 32
# (the digits model's 4x4 maps, 24 positions with their border columns, ran at 0.76-0.79x the rows
# per layer); since the delta convs split by rows and read a max pool before them
# (conv_input_fusion), those maps are faster in delta: AMD EPYC znver4, the digits model's conv2 /
# conv3 alone 1.63 / 2.22 us against the rows' 1.94 / 2.42 (AVX-512 VNNI build), 1.70 / 2.44
# against 2.27 / 2.93 (AVX2 build); the whole model in one process, in turns, 0.963x / 0.955x.
# Its 2x2 maps (8 positions) stay in rows: conv4 / conv5 2.36 / 4.00 us in delta against 2.14 /
# 3.43 (AVX2 build).
SPATIAL_MIN_POSITIONS = 16
# A one-position walk (dense layers, convs whose kernel covers the input) adds one scalar per
# entry, a uop more than the rows' per tap; it wins where the rows would not stay in cache
# between runs: SVHN ConvNet's 5x5 conv7 (rows 469 KB at 90% zeros, 164 KB at 95%) and AlexNet's
# fc layers (3.4-7.5 MB), not the MLP's 512x512 layer (52 KB) or LeNet's fc1. Measured with the
# walk's 4 running sums (AMD EPYC znver4, 2 threads, fastest of 9 x 100 runs, AVX-512 / AVX2
# builds): SVHN conv7 at 95% 19.6 / 35.3 us against the rows' 80.1 / 47.8; the MLP's 512x512
# layer 10.1 / 10.6 against 9.0 / 8.9.
POINTWISE_MIN_ROW_BYTES = 96 * 1024
# A dense layer's walk also pays per list (its head, the chains' starts, the loop's exit and the
# epilogue: ~25 cycles, where the rows' fixed-length loops pay none), which its adds amortize
# only at higher densities. AlexNet's fc layers (AMD EPYC znver4, 2 threads, 25 rounds of 20 runs
# in turns, AVX-512 / AVX2 builds): at 10% non-zero fc1 474 / 501 us in delta against the rows'
# 489 / 465, fc2 301 / 227 against 277 / 231; at 5% fc1 422 / 406 against 365 / 321, fc2 187 /
# 240 against 169 / 226. One core, fc1 at 2% non-zero: 292 against 231. (A one-position conv's
# rows are no match at either density: SVHN ConvNet's conv7 above.)
DENSE_MIN_DENSITY = 0.075
ROW_BYTES_PER_TAP = 2  # uint16 index rows (before their padding and row tables)


# A one-position layer with short lists runs the dot form (every weight multiplied, 64 a VNNI
# instruction, from two 0/1 planes of a byte a weight): with a few non-zero taps a channel, the
# index rows' per-channel work (row sums, a scalar epilogue) and gather-adds cost more than the
# dense products. Measured (AMD EPYC znver5, one layer alone, fastest of 15 x 50 runs, AVX-512
# VNNI / AVX2 builds, 90% zeros): the digits model's conv7 (128 -> 512, 13 taps a channel) 1.07 /
# 1.16 us against the rows' 3.1 / 3.2. Longer lists gain too little for the planes' bytes (2 a
# weight, against the rows' ~2 a non-zero one): LeNet's fc1 (512 -> 128, 51 taps a channel) 1.39 /
# 1.09 against 1.50 / 1.52, for 5x the bytes (whole model 12x less weight memory than FP32 -> 2.3x).
# The bound on weights keeps the planes at 256 KB or less; below 256 channels what the dot form
# saves (~4 ns a channel) is under a microsecond, and the planes' bytes are not worth it.
DOT_MAX_TAPS_PER_CHANNEL = 16
DOT_MAX_WEIGHTS = 1 << 17
DOT_MIN_CHANNELS = 256


def _short_lists(layer, taps: int) -> bool:
    co = layer.out_channels
    return co >= DOT_MIN_CHANNELS and taps <= DOT_MAX_TAPS_PER_CHANNEL * co and layer.codes.size <= DOT_MAX_WEIGHTS


# Where a word of bits does not expand cheaply (x86 without mask registers: AVX2), a dense layer of
# at least DOT_MIN_CHANNELS channels runs the dot form at any density from DOT_NARROW_MIN_DENSITY
# while its planes (2 bytes a weight, vpmaddubsw's uint8 x 0/1) stay within DOT_NARROW_MAX_WEIGHTS
# (512 KB: half of a Zen 4 core's L2; the rows' gather-adds cost ~0.33 ns a tap on two cores, the
# planes' products a fixed time). Measured (AMD EPYC znver4, AVX2 build, one layer alone, fastest
# of 8 x 5 x 20 runs): the MLP's 512x512 layer at 90% zeros 3.1 us against the rows' 8.7 (delta
# 11.1, bit-planes 12.4); break-even near 3.6% non-zero. Its weight bytes grow 79 KB -> 524 KB.
# LeNet's fc1 (128 channels) would gain 0.8 us for 6x its bytes: DOT_MIN_CHANNELS keeps its rows.
DOT_NARROW_MAX_WEIGHTS = 1 << 18
DOT_NARROW_MIN_DENSITY = 0.05


def _planes_pay(layer, taps: int, cls) -> bool:
    """A dense layer that runs the dot form where bits expand slowly (above)."""
    return (cls is not None and cls.is_x86 and not cls.mask_registers and layer.out_channels >= DOT_MIN_CHANNELS
            and layer.codes.size <= DOT_NARROW_MAX_WEIGHTS and taps >= DOT_NARROW_MIN_DENSITY * layer.codes.size)


# A dense layer, or a conv of at most packed_windows.MAX_POSITIONS output positions, whose index
# rows would be small (under POINTWISE_MIN_ROW_BYTES) runs its bit-planes through the dot-product
# instruction (ternary_dense_packed and packed_windows: bit_dot) where
# the target expands a word of bits in registers cheaply (IsaClass.mask_registers: AVX-512) and
# the planes take at most PACKED_MAX_BYTES_OVER_ROWS the rows' bytes (at 90% zeros about 1.2x).
# Measured (AMD EPYC znver5, one layer alone, fastest of 15 x 50 runs, AVX-512 VNNI build, 90%
# zeros): the MLP's 512x512 layer 1.84 us against the rows' 6.09 (dot form 5.29), LeNet's fc1
# (512 -> 128) 0.46 against 1.38; the digits model's convs on 2x2 maps 1.2 / 2.2 / 2.1 us against
# 2.2 / 3.9 / 3.8, its conv7 (1x1 on a 1x1 map) 0.5 against the dot form's 1.07; AVX-512 build
# without VNNI (vpmaddubsw + vpmaddwd): MLP 2.82 against 6.07, LeNet 0.71 against 1.82, the digits
# convs 2.4 / 3.2 / 3.2 against 2.3 / 3.8 / 3.8, conv7 0.7. On AVX2 the
# expansion costs 4 instructions a 32 weights before the two of vpmaddubsw + vpmaddwd: the MLP's
# layer took 8.3 us against the rows' 6.1, the digits model's 2x2 convs 6.5-7.5 against 2.5-4.3.
PACKED_MAX_BYTES_OVER_ROWS = 1.5
# Larger such layers keep the delta walk although the planes are faster on AVX-512: the default
# kernels' ternary bytes stay within 1.5x the entropy bound (issue #12), and these layers hold
# most of a network's weights (SVHN ConvNet's conv7 80%), at 2 bits a weight against the lists'
# ~0.8 at 90% zeros. Measured (AMD EPYC znver5, AVX-512 VNNI build, 2 threads, layer alone):
# SVHN conv7 packed 6.6 us against delta 16.0 (90%) and 6.2 / 9.4 (95%); AlexNet fc1 124 / 308
# us, fc2 56 / 134 (90%); whole models in one process, turns: SVHN 50 us against 60, AlexNet
# 0.80 ms against 1.07, where the bytes against the entropy bound went 1.46x -> 3.1x (SVHN) and
# 1.44x -> 3.4x (AlexNet). `--format LAYER=packed`, or a measured choice (format_choice), takes
# the speed. AVX2 build: conv7 25.7 us in planes against 16.4 (90%), so there the walk is faster too.


def _packed_pays(layer, taps: int, cls) -> bool:
    planes = bit_words_bytes(layer.codes.shape[0], layer.codes[0].size)
    rows = ROW_BYTES_PER_TAP * taps
    return cls is not None and cls.mask_registers and rows < POINTWISE_MIN_ROW_BYTES and planes <= PACKED_MAX_BYTES_OVER_ROWS * rows


def default_int8(layer, in_shape, cls=None) -> Format:
    """Format.BITS for an int8 layer of binary weights (BWN) that the bit form runs (a dense layer,
    a conv of few positions: primitives.formats_for) where a word of bits becomes a vector of
    +-1 bytes in one instruction after its kmovq (AVX-512's mask registers: vpblendmb); else
    Format.INT8. Measured on an AMD EPYC znver5, AVX-512 VNNI build, 2 threads, BWN SVHN
    ConvNet: conv6 (25 positions)
    6.3 us against the int8 form's 10.2, conv5 (49) 10.2 / 11.4, conv4 6.4 / 6.6, conv7 (one
    position, 1.6 MB of int8 weights) 4.0 / 4.1 alone and the whole model 0.90x the int8 form's
    time with conv6 and conv7 in bits (0.94x with conv7 alone: its 200 KB stay in cache where
    1.6 MB do not). The AVX2 build builds each word's bytes from a compare of its bits: there
    conv7 ran 17.0 us against 7.8 and conv4 29.2 against 20.4."""
    if cls is not None and cls.mask_registers and Format.BITS in primitives.formats_for(layer, in_shape):
        return Format.BITS
    return Format.INT8


def default_ternary(layer, in_shape, cls=None) -> Format:
    """Format.DELTA, Format.SPARSE, Format.DOT or Format.PACKED for ternary `layer` on input
    `in_shape`, built for ISA class `cls` (None: a rule that does not depend on it)."""
    taps = int(np.count_nonzero(layer.codes))
    if layer.op == "conv2d":
        geo = conv_layout.geometry(layer, in_shape)
        if packed_windows.covers(geo) and _packed_pays(layer, taps, cls):
            return Format.PACKED
        positions = ternary_conv2d_delta.walked_positions(geo)
        if positions > 1:
            return Format.DELTA if positions >= SPATIAL_MIN_POSITIONS else Format.SPARSE
    if layer.op == "dense" and _packed_pays(layer, taps, cls):
        return Format.PACKED
    if layer.op == "dense" and _planes_pay(layer, taps, cls):
        return Format.DOT
    if _short_lists(layer, taps) and (layer.op == "dense" or int8_conv2d.covers_input(geo)):
        return Format.DOT
    if layer.op == "dense" and taps < DENSE_MIN_DENSITY * layer.codes.size:
        return Format.SPARSE
    return Format.DELTA if ROW_BYTES_PER_TAP * taps >= POINTWISE_MIN_ROW_BYTES else Format.SPARSE
