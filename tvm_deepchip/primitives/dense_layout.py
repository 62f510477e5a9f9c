"""Input layout of the dense primitives: the input codes followed by one zero.

Sparse offset lists are padded to equal length with the index of that zero, so the padding
taps add nothing (the dense analogue of conv_layout's zero tail).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from . import roles


@dataclass(frozen=True)
class DenseShape:
    n: int
    k: int
    co: int

    def out_shape(self):
        return (self.n, self.co)


def geometry(layer, in_shape) -> DenseShape:
    """The shapes of a dense layer on input `in_shape`, checked ([N, K] x [Co, K])."""
    w_shape, name = layer.codes.shape, layer.name
    if len(in_shape) != 2 or len(w_shape) != 2 or in_shape[1] != w_shape[1]:
        raise InputError(f"{name}: dense input {tuple(in_shape)} does not match weight {tuple(w_shape)} ([N, K] x [Co, K])")
    return DenseShape(int(in_shape[0]), int(w_shape[1]), int(w_shape[0]))


def te_zero_tail(x, name="xz"):
    from tvm import te, tirx

    n, k = (int(s) for s in x.shape)
    return te.compute((n, k + 1), lambda i, j: tirx.if_then_else(j < k, x[i, tirx.min(j, k - 1)], tirx.const(0, x.dtype)),
                      name=name, attrs=roles.attrs(roles.LAYOUT))


def te_slotted(x, length: int, name: str = "xslots"):
    """[N, whole slots]: x[:, :length] with a zero at every multiple of SLOT (delta_lists.slotted),
    zeros after it to the end of its last slot (TE): the input of the delta lists' pointwise walk
    (delta_walk), whose running sums start on zero slots and hop over long gaps by them. Whole
    slots, so its loop splits into (slot, position) without div/mod and copies a slot's inputs
    as vectors (as one flat loop it computed j // 255 per byte: ~13 us of AlexNet fc1's walk)."""
    from tvm import te, tirx

    from .delta_lists import SLOT, slotted_length, unslotted

    n, slots = int(x.shape[0]), -(-slotted_length(length) // SLOT)

    def value(i, j):
        t = unslotted(j)
        return tirx.if_then_else(tirx.all(j % SLOT != 0, t < length), x[i, tirx.min(tirx.max(t, 0), length - 1)],
                                 tirx.const(0, x.dtype))

    return te.compute((n, slots * SLOT), value, name=name, attrs=roles.attrs(roles.LAYOUT, **{roles.SPLIT_KEY: [1, SLOT]}))


def np_zero_tail(qx: np.ndarray) -> np.ndarray:
    return np.concatenate([qx, np.zeros((qx.shape[0], 1), qx.dtype)], axis=1)
