"""Asymmetric ternarization of one weight tensor: W -> {-Wn, 0, +Wp} (per layer or per output
channel), and int8 per-channel weights for the layers that stay 8-bit.

Zeros: |w| <= t * max|W| (threshold mode, t = 0.05 in the DeepChip paper), or the k = round(S*n)
smallest |w| of the layer (sparsity mode, ties broken by position so the zero count is exact).
The rule applies per layer, or per output channel with `per_channel` (BatchNorm folding scales
channels differently, so one layer-wide max|W| would zero whole small channels). Wp and Wn are the means of the kept positive and
negative weights: for fixed signs, the L2-optimal scale of each part.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Ternary:
    signs: np.ndarray  # int8 in {-1, 0, +1}, the weight's shape
    wp: np.ndarray  # float32 [Co] (per layer: the same value repeated)
    wn: np.ndarray  # float32 [Co], positive magnitudes
    per_channel: bool
    kept: bool = False  # the weight already was ternary and is kept as is

    def weight(self) -> np.ndarray:
        """The float32 weight holding exactly {-Wn, 0, +Wp} (per channel: {-Wn[c], 0, +Wp[c]})."""
        shape = (-1,) + (1,) * (self.signs.ndim - 1)
        wp = self.wp.reshape(shape).astype(np.float32)
        wn = self.wn.reshape(shape).astype(np.float32)
        return (np.where(self.signs > 0, wp, np.float32(0)) - np.where(self.signs < 0, wn, np.float32(0))).astype(np.float32)

    @property
    def sparsity(self) -> float:
        return float(np.mean(self.signs == 0))


def zero_mask(w: np.ndarray, threshold: float | None = None, sparsity: float | None = None) -> np.ndarray:
    """Boolean mask of the weights set to zero (one rule for the whole layer)."""
    a = np.abs(w).ravel()
    if sparsity is not None:
        k = int(round(sparsity * a.size))
        mask = np.zeros(a.size, bool)
        if k:
            mask[np.argsort(a, kind="stable")[:k]] = True
        return mask.reshape(w.shape)
    return (np.abs(w) <= threshold * a.max()).reshape(w.shape) if a.size else np.zeros(w.shape, bool)


def _means(w2: np.ndarray, signs2: np.ndarray, axis):
    pos, neg = signs2 > 0, signs2 < 0
    n_p, n_n = pos.sum(axis=axis), neg.sum(axis=axis)
    wp = np.where(pos, w2, 0).sum(axis=axis) / np.maximum(n_p, 1)
    wn = -np.where(neg, w2, 0).sum(axis=axis) / np.maximum(n_n, 1)
    return wp, wn


def ternarize(w: np.ndarray, threshold: float | None = 0.05, sparsity: float | None = None,
              per_channel: bool = False) -> Ternary:
    """Ternarize `w` ([Co, ...]); `sparsity` (if given) overrides `threshold`."""
    w = np.asarray(w, np.float64)
    signs = np.sign(w).astype(np.int8)
    co = w.shape[0]
    w2, s2 = w.reshape(co, -1), signs.reshape(co, -1)
    if per_channel:
        for c in range(co):
            s2[c][zero_mask(w2[c], threshold, sparsity)] = 0
    else:
        signs[zero_mask(w, threshold, sparsity)] = 0
    if per_channel:
        wp, wn = _means(w2, s2, axis=1)
    else:
        wp, wn = _means(w2, s2, axis=None)
        wp, wn = np.full(co, wp), np.full(co, wn)
    return Ternary(signs, wp.astype(np.float32), wn.astype(np.float32), per_channel)


def binarize(w: np.ndarray) -> Ternary:
    """Binary-Weight-Networks: sign(W) * mean|W[c]| per output channel, sign(0) = +1, so each
    channel holds exactly {-a[c], +a[c]} (a ternary form without zeros)."""
    w = np.asarray(w, np.float32)
    signs = np.where(w >= 0, 1, -1).astype(np.int8)
    a = np.abs(w.reshape(w.shape[0], -1)).mean(axis=1).astype(np.float32)
    return Ternary(signs, a.copy(), a.copy(), per_channel=True)


def smallest_with_a_zero(w: np.ndarray, sparsity_mode: bool, per_channel: bool = False) -> float:
    """The smallest sparsity (or threshold) at which `ternarize` gives `w` at least one zero: below
    it the weight comes out two-valued {-Wn, +Wp}, binary rather than ternary."""
    w = np.abs(np.asarray(w, np.float64))
    units = w.reshape(w.shape[0], -1) if per_channel else w.reshape(1, -1)
    if sparsity_mode:  # k = round(S * n) >= 1 per unit
        return 1.0 / units.shape[1]
    peak = units.max(axis=1)
    return float(np.min(np.where(peak > 0, units.min(axis=1) / np.where(peak > 0, peak, 1), 0.0)))


def detect_ternary(w: np.ndarray) -> Ternary | None:
    """If `w` already holds ternary values (per layer {-a, 0, +b}, or per output channel
    {-a[c], 0, +b[c]}), return them as they are; else None."""
    w = np.asarray(w)
    if w.ndim < 2 or not np.issubdtype(w.dtype, np.floating):
        return None
    co = w.shape[0]
    w2 = w.reshape(co, -1)
    if len(np.unique(w2[0])) > 3:  # fast reject: a float layer shows it in its first channel
        return None
    pos_vals = [np.unique(r[r > 0]) for r in w2]
    neg_vals = [np.unique(r[r < 0]) for r in w2]
    if any(len(p) > 1 for p in pos_vals) or any(len(n) > 1 for n in neg_vals):
        return None
    wp = np.array([p[0] if len(p) else 0.0 for p in pos_vals], np.float32)
    wn = np.array([-n[0] if len(n) else 0.0 for n in neg_vals], np.float32)
    # Per layer when one positive and one negative value serve all channels.
    per_channel = len(np.unique(wp[wp > 0])) > 1 or len(np.unique(wn[wn > 0])) > 1
    if not per_channel:
        wp[:] = wp.max() if wp.size else 0
        wn[:] = wn.max() if wn.size else 0
    signs = np.sign(w).astype(np.int8)
    return Ternary(signs, wp, wn, per_channel, kept=True)


@dataclass
class Int8Weight:
    q: np.ndarray  # int8, the weight's shape
    scale: np.ndarray  # float32 [Co]

    def weight(self) -> np.ndarray:
        return (self.q.astype(np.float32) * self.scale.reshape((-1,) + (1,) * (self.q.ndim - 1))).astype(np.float32)


def int8_per_channel(w: np.ndarray) -> Int8Weight:
    """Symmetric per-output-channel int8 (range [-127, 127], zero point 0)."""
    w = np.asarray(w, np.float32)
    co = w.shape[0]
    amax = np.abs(w.reshape(co, -1)).max(axis=1)
    scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
    q = np.clip(np.round(w / scale.reshape((-1,) + (1,) * (w.ndim - 1))), -127, 127).astype(np.int8)
    return Int8Weight(q, scale)
