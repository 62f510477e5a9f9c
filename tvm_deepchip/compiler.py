"""The driver: quantized ONNX -> Relax -> DeepChip passes -> scheduled TIR -> native library.

It only wires the parts: import (onnx_import), rewrites (passes), primitives (primitives),
schedules (schedules, tuning logs) and TVM's build/export.
"""
from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from . import isa, onnx_io, output_paths, signature, targets, tuning_db
from .compile_report import CompileReport
from .errors import InputError
from .formats import CHOICES, TERNARY_ONLY, Format
from .layer import QuantLayer
from .layer_names import weight_sites
from .layer_plan import LayerPlan
from .passes import lower_to_primitives

log = logging.getLogger(__name__)

TERNARY_FORMATS = CHOICES  # (formats.py)


@dataclass
class LayerOptions:
    """Per-layer choices the passes consult; the plan the lowering fills in (layer_plan) and
    the build's schedule choices, from which the compile report is made."""

    formats: dict = field(default_factory=dict)  # ONNX node name -> format (forced)
    measured: dict = field(default_factory=dict)  # layer_key -> fastest format (format_choice)
    default_ternary: str = Format.SPARSE
    plan: LayerPlan = field(default_factory=LayerPlan)  # made by passes.lower_to_primitives
    report: CompileReport = field(default_factory=CompileReport)  # schedules, tuning log (build)
    tuning_dir: Path | None = None  # MetaSchedule database applied at build time
    database: object = None  # its records of the build's ISA class (None: ignored or none asked for)
    failure: Exception | None = None  # an error raised inside a pass (re-raised by the driver)
    int8_operand: str = "uint8"  # the target's dot-product input type (targets.TargetPreset)

    @property
    def lowered(self) -> list:
        """(QuantLayer, input shape) of each lowered layer, in graph order."""
        return self.plan.lowered_layers()

    def choose_format(self, layer: QuantLayer) -> str:
        from .primitives import formats_for

        fmt = self.formats.get(layer.name) or self.measured.get(layer_key(layer))
        if fmt is None:
            if layer.weight_kind != "ternary":
                return Format.INT8
            # the default applies where it is exact (int8 needs Wp == Wn); else the sparse form
            return self.default_ternary if self.default_ternary in formats_for(layer) + (Format.FLOAT,) else Format.SPARSE
        if fmt not in TERNARY_FORMATS:
            raise InputError(f"layer {layer.name!r}: unknown format {fmt!r}; choose from {TERNARY_FORMATS}")
        if layer.weight_kind == "int8" and fmt in TERNARY_ONLY:
            raise InputError(f"layer {layer.name!r}: weight is int8, not ternary; cannot use format {fmt!r}")
        return fmt


def layer_key(layer: QuantLayer) -> str:
    """Identity of a layer for recorded choices: its name and a hash of its integer weights."""
    w = np.ascontiguousarray(layer.signs)
    return f"{layer.name}:{hashlib.sha1(w.tobytes() + str((w.shape, w.dtype)).encode()).hexdigest()[:16]}"


def check_format_names(model: onnx.ModelProto, formats: dict) -> None:
    """Every layer named in `formats` is a weight-bearing layer of the model (named as in the
    report) and every format is one of TERNARY_FORMATS (checked before import)."""
    for layer, fmt in formats.items():
        if fmt not in TERNARY_FORMATS:
            raise InputError(f"--format {layer}={fmt}: unknown format {fmt!r}; choose from {', '.join(TERNARY_FORMATS)}")
    names = [s.name for s in weight_sites(model)]
    unknown = sorted(set(formats) - set(names))
    if unknown:
        raise InputError(f"--format names layer(s) {unknown} that the model does not have; its layers: {names}")


@dataclass
class Compiled:
    executable: object
    report: CompileReport
    preset: targets.TargetPreset
    input_shapes: dict

    def export(self, path: str | os.PathLike) -> Path:
        """Write the shared library (cross-compiled for ARM presets), atomically."""
        from tvm.support import cc

        path = Path(path)
        fcompile = None
        if self.preset.cross_compiler:
            fcompile = cc.cross_compiler(targets.check_cross_compiler(self.preset))
        with output_paths.atomic_file(path) as tmp:
            self.executable.export_library(str(tmp), fcompile=fcompile)
        return path


def legalize(mod, target):
    """TVM's CPU library dispatch, legalization and fusion: the module MetaSchedule tunes."""
    import tvm
    from tvm.relax.backend.cpu_generic import pipeline as cpu

    with target:
        return tvm.transform.Sequential(cpu.library_dispatch_passes(target) + cpu.legalize_passes(target))(mod)


def finish_pipeline(target, options):
    """Schedules (tuned records, then our defaults), then TVM's lowering to the VM."""
    import tvm
    from tvm.relax.backend.cpu_generic import pipeline as cpu

    from .schedule_apply import apply_schedules

    @tvm.transform.module_pass(opt_level=0)
    def _pipeline(mod, _ctx):
        with target:
            mod = apply_schedules(mod, target, options)
            mod = tvm.transform.Sequential(cpu.dataflow_lower_passes(target) + cpu.finalize_passes(target))(mod)
        return mod

    return _pipeline


def lower(model, preset, options: LayerOptions, input_shapes: dict | None = None):
    """Quantized ONNX -> legalized Relax module with our primitives (before scheduling)."""
    from .onnx_import import static_input_shapes, to_relax, warn_static_overrides

    shapes = static_input_shapes(model, input_shapes)
    warn_static_overrides(model, input_shapes)
    check_format_names(model, options.formats)
    options.int8_operand = preset.int8_operand
    mod = lower_to_primitives(to_relax(model, shapes), options)
    options.plan.check_forced(options.formats)
    options.plan.log_float()
    return legalize(mod, targets.tvm_target(preset)), shapes


def compile(  # noqa: A001 - the package's verb, as in tvm.compile
    model,
    target: str = "x86",
    *,
    target_json=None,
    formats: dict | None = None,
    default_ternary: str = Format.SPARSE,
    input_shapes: dict | None = None,
    tuning_log: str | os.PathLike | None = "auto",
    output: str | os.PathLike | None = None,
) -> Compiled:
    """Compile a quantized ONNX model (path or ModelProto) for a target preset.

    formats: per-layer format ("sparse" | "packed" | "int8" | "float"), by ONNX node name.
    tuning_log: a MetaSchedule database directory, "auto" (the committed one for the target, if
    any) or None (hand-written default schedules only).
    """
    import tvm

    if not isinstance(model, onnx.ModelProto):
        model = onnx_io.load_model(model)
    if output is not None:
        output_paths.check_file(output, "output")  # fail before minutes of compilation
    check_format_names(model, formats or {})
    preset = targets.get_preset(target, target_json)
    if preset.cross_compiler and output is not None:
        targets.check_cross_compiler(preset)  # fail before minutes of compilation
    options = LayerOptions(formats=dict(formats or {}), default_ternary=default_ternary)
    cls = isa.classify(preset.target)
    options.report.target = targets.describe(preset)
    options.tuning_dir = tuning_db.resolve(tuning_log, preset)
    options.database = tuning_db.open_database(options.tuning_dir, cls)
    if options.database is not None:  # a foreign log's format choices were measured elsewhere
        options.measured = tuning_db.load_format_choices(options.tuning_dir)
    mod, shapes = lower(model, preset, options, input_shapes)
    mod = signature.attach(mod)  # so `deepchip run` checks inputs against it before running
    tgt = targets.tvm_target(preset)
    ex = tvm.compile(mod, tgt, relax_pipeline=finish_pipeline(tgt, options))
    options.report.layers = options.plan.rows()
    compiled = Compiled(ex, options.report, preset, shapes)
    if output is not None:
        compiled.export(output)
    return compiled
