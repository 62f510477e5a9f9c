"""The quantize of a model's float input (ONNX QuantizeLinear, per tensor), as a first layer's
layout copy applies it to the floats it reads (passes/quantize_into_conv.py): the codes the
separate quantize kernel would have written, computed where the conv reads them.

The arithmetic is TVM's legalization of relax.quantize (relax/transform/legalize_ops/qdq.py),
written again here because that one builds a whole TE stage and the copy needs it on the vectors
it loads: clip(round(x / scale) + zero point) in float32 (round half to even), cast to the
codes' type. The numpy reference is the same float32 arithmetic (onnxruntime's too).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EIGHT_BITS = ("int8", "uint8")


@dataclass(frozen=True)
class InputQuantize:
    """A per-tensor quantize of float32 values into 8-bit codes."""

    scale: float
    zero_point: int
    dtype: str  # the codes' type: int8 or uint8

    def te_codes(self, v):
        """The code of float32 value `v` (a TIR scalar expression: the copies quantize one lane's
        value per expression in vectorized loops, as TVM's own quantize does; a vector constant,
        a Broadcast, is what MetaSchedule's task weighting cannot visit, grouped_layout.splat)."""
        from tvm import tirx

        info = np.iinfo(self.dtype)
        scaled = tirx.round(v / tirx.const(self.scale, "float32")) + tirx.const(float(self.zero_point), "float32")
        clipped = tirx.max(tirx.min(scaled, tirx.const(float(info.max), "float32")), tirx.const(float(info.min), "float32"))
        return clipped.astype(self.dtype)

    def np_codes(self, x: np.ndarray) -> np.ndarray:
        """numpy: the same float32 arithmetic."""
        scaled = np.round(x.astype(np.float32) / np.float32(self.scale)) + np.float32(self.zero_point)
        info = np.iinfo(self.dtype)
        return np.clip(scaled, info.min, info.max).astype(self.dtype)


def of(scale, zero_point, out_dtype: str) -> InputQuantize | None:
    """The InputQuantize of a quantize's constants, or None where they are not one scalar each
    (per-channel) or the codes are not 8-bit."""
    scale, zero_point = np.asarray(scale), np.asarray(zero_point)
    if scale.size != 1 or zero_point.size != 1 or str(out_dtype) not in EIGHT_BITS:
        return None
    return InputQuantize(float(np.float32(scale.reshape(()))), int(zero_point.reshape(())), str(out_dtype))
