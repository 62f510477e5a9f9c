"""Comparing an accuracy measured here with the figure recorded on another machine.

A float result recorded on one CPU is compared within a stated bound: an image's prediction may
differ between CPUs only if its two top logits are closer than the results of two summation
orders (AVX2 vs AVX-512 kernels) can differ. For float32 logits that is ~sqrt(K) * 6e-8 relative
per layer (K <= 1152-term dot products in the digits net), a few 1e-6 of the largest |logit|
over its 9 layers; for the compiled integer model, whose kernels are exact, only a last-bit
change of a calibrated scale can flip a rounding tie, moving a logit by one input code times a
weight of the last layer (~2e-3 here). FRAGILE = 1e-3 of the largest |logit| (~0.017 for the
digits models) covers both with a margin; only images below it may move the figure. Measured on
znver3: none is (the smallest top-2 margin is 0.12), so the figure must match exactly.
"""
from __future__ import annotations

import numpy as np

FRAGILE = 1e-3


def fragile_images(logits: np.ndarray) -> int:
    top2 = np.sort(logits, axis=1)[:, -2:]
    return int(((top2[:, 1] - top2[:, 0]) < FRAGILE * np.abs(logits).max()).sum())


def assert_recorded_accuracy(logits: np.ndarray, y: np.ndarray, recorded: float, what: str) -> None:
    """Images predicted right == the recorded accuracy's count, within the fragile images."""
    fragile = fragile_images(logits)
    correct = int((logits.argmax(1) == y).sum())
    expected = round(recorded * len(y))
    assert abs(correct - expected) <= fragile, (
        f"{what}: {correct}/{len(y)} right here, {expected} recorded; {fragile} image(s) near a tie")
