"""The planner: the imported Relax module -> the plan (layer_plan.LayerPlan), before any rewrite.

For every weight-bearing layer it decides, by ONNX node name: the QuantLayer, its input shape,
the format and why (forced by --format, measured in formats.json, the default), and the packed
kernel (primitives.lower_layer, with the ISA class's int8 operand); or why the layer stays
float. Every error (an unknown format, int8 weights forced to a ternary format, a forced layer
that cannot be lowered, a kernel that cannot be built) is raised here, as Python raises it; the
lowering pass (passes.LowerQuantLayers) then only applies the plan.

Matching sees the module as the lowering will: after the 8-bit data-movement rules, which only
move dequantize ops and so change no layer's weights, scales or shapes.
"""
from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import numpy as np
import onnx

from . import dead_taps, primitives
from .primitives import bwn_conv2d
from .errors import InputError
from .format_rule import default_int8, default_ternary
from .formats import AUTO, CHOICES, DEFAULT_TERNARY, FALLBACK_TERNARY, TERNARY_ONLY, Format
from .isa import IsaClass
from .layer import QuantLayer
from .layer_names import weight_sites
from .layer_plan import FormatSource, LayerPlan, Lowered
from .passes import RULES, IntegerDataMovement
from .passes.layer_check import check_layer, input_shape, weight_name

TERNARY_FORMATS = CHOICES  # (formats.py)


@dataclass(frozen=True)
class LayerChoices:
    """What the user chose: formats by ONNX node name, the default ternary format, and the
    MetaSchedule database directory applied at build time (None: default schedules only)."""

    formats: Mapping[str, str] = field(default_factory=dict)
    default_ternary: str = DEFAULT_TERNARY
    tuning_dir: Path | None = None

    def __post_init__(self):
        object.__setattr__(self, "formats", MappingProxyType(dict(self.formats)))


def layer_key(layer: QuantLayer) -> str:
    """Identity of a layer for recorded choices: its name and a hash of its integer weights."""
    w = np.ascontiguousarray(layer.codes)
    return f"{layer.name}:{hashlib.sha1(w.tobytes() + str((w.shape, w.dtype)).encode()).hexdigest()[:16]}"


def check_format_names(model: onnx.ModelProto, formats: Mapping) -> None:
    """Every layer named in `formats` is a weight-bearing layer of the model (named as in the
    report) and every format is one of TERNARY_FORMATS (checked before import)."""
    for layer, fmt in formats.items():
        if fmt not in TERNARY_FORMATS:
            raise InputError(f"--format {layer}={fmt}: unknown format {fmt!r}; choose from {', '.join(TERNARY_FORMATS)}")
    names = [s.name for s in weight_sites(model)]
    unknown = sorted(set(formats) - set(names))
    if unknown:
        raise InputError(f"--format names layer(s) {unknown} that the model does not have; its layers: {names}")


def choose_format(layer: QuantLayer, in_shape: tuple, choices: LayerChoices, measured: Mapping,
                  cls: IsaClass | None = None) -> tuple[str, FormatSource]:
    """The layer's format and why: forced, else measured, else the default (AUTO: by the layer's
    shape, format_rule.py; a named format where it is exact: int8 needs Wp == Wn; else the index
    rows). Int8 weights default to int8."""
    fmt, source = choices.formats.get(layer.name), FormatSource.FORCED
    if not fmt:
        fmt, source = measured.get(layer_key(layer)), FormatSource.MEASURED
    if not fmt:
        if layer.weight_kind != "ternary":
            return default_int8(layer, in_shape, cls), FormatSource.DEFAULT
        fmt = default_ternary(layer, in_shape, cls) if choices.default_ternary == AUTO else choices.default_ternary
        exact = primitives.formats_for(layer, in_shape) + (Format.FLOAT,)
        return (fmt if fmt in exact else FALLBACK_TERNARY), FormatSource.DEFAULT
    if fmt not in TERNARY_FORMATS:
        raise InputError(f"layer {layer.name!r}: unknown format {fmt!r}; choose from {TERNARY_FORMATS}")
    if layer.weight_kind == "int8" and fmt in TERNARY_ONLY:
        raise InputError(f"layer {layer.name!r}: weight is int8, not ternary; cannot use format {fmt!r}")
    if fmt == Format.BITS and fmt not in primitives.formats_for(layer, in_shape):
        raise InputError(f"layer {layer.name!r}: format 'bits' needs binary weights ({{-a, +a}} per channel) in a "
                         f"dense layer or a conv of at most {bwn_conv2d.MAX_POSITIONS} output positions whose "
                         f"strides divide its kernel")
    return fmt, source


def _calls(func) -> list:
    from tvm import relax

    found = []
    relax.analysis.post_order_visit(func, lambda e: found.append(e) if isinstance(e, relax.Call) else None)
    return found


def plan_layers(mod, isa_class: IsaClass, choices: LayerChoices = LayerChoices(),
                measured: Mapping | None = None) -> LayerPlan:
    """The plan of the imported module `mod` for a build of `isa_class`. `measured`: layer_key ->
    format recorded by format choice (formats.json)."""
    from tvm import relax

    measured = measured or {}
    plan = LayerPlan.of(mod)
    form = IntegerDataMovement()(mod)
    decided = set()
    for rule in RULES:  # a layer is decided by the first variant whose check passes
        pattern = rule.pattern()
        for func in [f for _, f in form.functions.items() if isinstance(f, relax.Function)]:
            var2val = relax.analysis.get_var2val(func)
            for call in _calls(func):
                m = pattern.root.extract_matched_expr(call, var2val)
                name = weight_name(pattern, m) if m is not None else None
                if name not in plan or name in decided:
                    continue  # no match, a constant TVM's import made, or decided already
                checked = check_layer(pattern, m, var2val, name)
                forced = choices.formats.get(name)
                if checked.layer is None:
                    if forced not in (None, Format.FLOAT):
                        raise InputError(f"layer {name!r}: cannot use format {forced!r}: {checked.why}")
                    plan.keep_float(name, checked.why)
                    continue
                decided.add(name)
                shape = input_shape(pattern, m)
                layer = dead_taps.crop(checked.layer, shape)
                fmt, source = choose_format(layer, shape, choices, measured, isa_class)
                if fmt == Format.FLOAT:
                    plan.keep_float(name, "float requested")
                    continue
                kernel = primitives.lower_layer(layer, shape, fmt, isa_class)
                plan.lower(name, Lowered(layer, fmt, source, shape, rule, kernel))
    _plan_xnor(form, plan, isa_class, choices)
    plan.check_forced(choices.formats)
    return plan


def _plan_xnor(form, plan: LayerPlan, isa_class: IsaClass, choices: LayerChoices) -> None:
    """XNOR layers (binary inputs and weights: passes/xnor_match.py) run XNOR kernels, unless
    the user keeps one float; their outputs are decided among the lowered ones."""
    from tvm import relax

    from .passes.xnor_match import decide_outputs, find_sites

    for func in [f for _, f in form.functions.items() if isinstance(f, relax.Function)]:
        sites = []
        for site in find_sites(func):
            forced = choices.formats.get(site.name)
            if site.name not in plan or forced == Format.FLOAT:
                continue
            if forced is not None:
                raise InputError(f"layer {site.name!r}: cannot use format {forced!r}: binary weights on binary "
                                 f"inputs run XNOR kernels (or float)")
            sites.append(site)
        decide_outputs(func, sites)
        for site in sites:
            layer = dead_taps.crop(site.layer, site.in_shape)
            kernel = primitives.lower_layer(layer, site.in_shape, Format.XNOR, isa_class)
            plan.lower(site.name, Lowered(layer, Format.XNOR, FormatSource.DEFAULT, site.in_shape, None, kernel))
