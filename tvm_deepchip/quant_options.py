"""The quantizer's option checks: each bad option is an InputError saying what is expected
(and, for a ternarization that leaves a layer without zeros, the smallest option that works)."""
from __future__ import annotations

import numbers

import numpy as np

from .errors import InputError

SCHEMES = ("ternary", "bwn", "xnor")  # weights of the inner layers; xnor also binarizes their inputs


def check_options(threshold, sparsity, first_last, calib_method, percentile, scheme="ternary"):
    if scheme not in SCHEMES:
        raise InputError(f"scheme {scheme!r}: expected one of {', '.join(SCHEMES)}")
    if sparsity is not None:
        if not isinstance(sparsity, numbers.Real) or not 0 <= sparsity < 1:
            raise InputError(f"sparsity {sparsity!r}: expected a fraction in [0, 1) (e.g. 0.9 for 90% zeros)")
    elif not isinstance(threshold, numbers.Real) or not threshold > 0 or not np.isfinite(threshold):
        raise InputError(f"threshold {threshold!r}: expected t > 0 (zeros where |w| <= t*max|W|; the paper uses 0.05)")
    if first_last not in ("int8", "float", "ternary"):
        raise InputError(f"first_last {first_last!r}: expected 'int8', 'float' or 'ternary'")
    if calib_method not in ("minmax", "percentile"):
        raise InputError(f"calib_method {calib_method!r}: expected 'minmax' or 'percentile'")
    if not 50 < percentile <= 100:
        raise InputError(f"percentile {percentile!r}: expected a value in (50, 100]")


def check_keep(keep, layers, where):
    """The node names kept at `first_last` precision (None: the first and the last layer)."""
    if keep is None:
        return None
    keep = [keep] if isinstance(keep, str) else list(keep)
    names = {n.name or n.output[0] for n in layers}
    unknown = sorted(set(keep) - names)
    if unknown:
        raise InputError(f"keep names {unknown}, which are not Conv/Gemm/MatMul nodes of {where} (its layers: {sorted(names)})")
    return set(keep)


def check_layer_sparsity(layer_sparsity, layers, where):
    """Per-layer sparsity targets: fractions in [0, 1), keyed by node names that exist."""
    if layer_sparsity is None:
        return {}
    if not isinstance(layer_sparsity, dict):
        raise InputError(f"layer_sparsity: expected a dict of node name -> fraction, got {type(layer_sparsity).__name__}")
    names = {n.name or n.output[0] for n in layers}
    unknown = sorted(set(layer_sparsity) - names)
    if unknown:
        raise InputError(f"layer_sparsity names {unknown} are not Conv/Gemm/MatMul nodes of {where} "
                         f"(its layers: {sorted(names)})")
    for name, s in layer_sparsity.items():
        if not isinstance(s, numbers.Real) or not 0 <= s < 1:
            raise InputError(f"layer_sparsity[{name!r}] = {s!r}: expected a fraction in [0, 1)")
    return dict(layer_sparsity)


def refuse_binary(binary: dict) -> None:
    """InputError for ternary layers the options leave without a zero weight (see the message)."""
    def up(v):  # rounded up to 3 significant digits, so the value shown does give a zero
        e = 10.0 ** (np.floor(np.log10(v)) - 2) if v > 0 else 1.0
        return float(np.ceil(v / e - 1e-9) * e)

    option, value, _ = next(iter(binary.values()))
    need = up(max(m for _, _, m in binary.values()))
    raise InputError(
        f"{option} {value:g} leaves no zero weight in layer(s) {sorted(binary)}: their weights would be two-valued "
        f"{{-Wn, +Wp}} (binary, not ternary), which the compiler does not lower (it would leave them float); "
        f"the smallest {option.split('[')[0]} that gives {'them' if len(binary) > 1 else 'it'} a zero is {need:g}")
