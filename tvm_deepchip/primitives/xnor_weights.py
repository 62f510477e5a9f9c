"""The XNOR primitives' weights: binary_bits words of the +1 signs, output channels padded to
LANES and grouped in blocks of B (`channel_block`) outermost, so a schedule that reduces one block
over every tap before the next reads the block's weights in order: [KH, KW, Cw, Cp] made it read
256 bytes every Cp * 4, and a layer with one output position streams its weights once (SVHN
ConvNet BNN conv7, 200 KB from L2: 1.6 -> 1.0 us on one core, AMD EPYC znver5). Shared by
xnor_conv2d, xnor_dense and xnor_rows.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .conv_layout import _ceil
from .record import Weights, scalar

LANES = 16  # output channels are padded to this (one AVX-512 vector of uint32 words)
BLOCK = 64  # output channels a weight block holds where Cp allows (the AVX-512 schedule's 4 vectors)


def padded(co: int) -> int:
    """Cp: the output channels the kernels compute (the weights' and thresholds' length)."""
    return _ceil(co, LANES) * LANES


def channel_block(cp: int) -> int:
    """B: BLOCK where it divides Cp, else Cp (one block)."""
    return BLOCK if cp % BLOCK == 0 else cp


def np_blocked(w: np.ndarray) -> np.ndarray:
    """[..., Cp] -> [Cp / B, ..., B]."""
    cp = w.shape[-1]
    b = channel_block(cp)
    return np.ascontiguousarray(np.moveaxis(w.reshape(w.shape[:-1] + (cp // b, b)), -2, 0))


def np_unblocked(wb: np.ndarray) -> np.ndarray:
    """Inverse of np_blocked: [Cp / B, ..., B] -> [..., Cp]."""
    moved = np.moveaxis(wb, 0, -2)
    return moved.reshape(moved.shape[:-2] + (-1,))


def te_weight(w, idx: tuple, c):
    """w[c / B, *idx, c % B] of blocked weights (TE)."""
    b = int(w.shape[-1])
    return w[(c // b, *idx, c % b)]


def padded_channels(w) -> int:
    """Cp of blocked weights."""
    return int(w.shape[0]) * int(w.shape[-1])


@dataclass(frozen=True, eq=False)
class XnorWeights(Weights):
    # uint32 [Cp / B, KH, KW, Cw, B] (xnor_conv2d) or [Cp / B, Kw, B] (xnor_dense): np_blocked; uint64
    # with Cw / 2 (Kw / 2) where the class reads words in pairs (binary_bits.pairs_words)
    w: object
    taps: int = scalar(0)  # real (+-1) weights per output channel: C (per window tap) or K


def taps_inside(start, extent: int, size: int):
    """How many of taps start .. start + extent - 1 lie in [0, size) (TE)."""
    from tvm import tirx

    return tirx.max(tirx.min(start + extent, size) - tirx.max(start, 0), 0)
