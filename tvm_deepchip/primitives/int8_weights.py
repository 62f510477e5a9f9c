"""int8 weights as the int8 primitives (conv2d and dense) store them, and their exactness bound."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from .record import Weights, scalar


def check_bound(in_dtype: str, w: np.ndarray, name: str) -> None:
    """int32 accumulation is exact while sum |x|*|w| < 2^31 for every channel."""
    xmax = 255 if in_dtype == "uint8" else 128
    worst = xmax * np.abs(w.reshape(w.shape[0], -1).astype(np.int64)).sum(1).max()
    if worst >= 2**31:
        raise InputError(f"{name}: int8 layer with K={w[0].size} can overflow an int32 accumulator")


@dataclass(frozen=True, eq=False)
class Int8Weights(Weights):
    w: object  # int8 (int16 for int16 operands) in the primitive's layout
    operand: str = scalar("uint8")  # the type the dot products read the input codes in
