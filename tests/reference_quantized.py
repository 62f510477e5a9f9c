"""The reference networks quantized once per test process: test_quantize checks what the
quantizer made of AlexNet, test_reference_networks compiles the same model (quantizing AlexNet
takes ~40 s on a Zen 1 core; both asked for the same one: seed 0, two calibration images of
default_rng(0), 90% zeros)."""
from __future__ import annotations

import functools

import numpy as np

SPARSITY = 0.9


@functools.lru_cache(maxsize=None)
def quantized(name: str):
    """(float model, quantized model, report, input shape) of models.MODELS[name] at SPARSITY.
    Callers must not modify the returned models (they are shared)."""
    from tvm_deepchip import models, quantize

    fm = models.MODELS[name](batch=1, seed=0)
    shape = [d.dim_value for d in fm.graph.input[0].type.tensor_type.shape.dim]
    calib = np.random.default_rng(0).random([2] + shape[1:], dtype=np.float32)
    q, report = quantize(fm, sparsity=SPARSITY, calib=calib)
    return fm, q, report, shape
