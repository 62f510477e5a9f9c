"""The driver: quantized ONNX -> Relax -> plan -> DeepChip passes -> scheduled TIR -> native library.

It only wires the parts, each asked once: the target (targets.resolve: preset, TVM target, ISA
class), import (onnx_import), the plan (planner), the rewrites that apply it (passes), schedules
(schedule_apply: tuned records, then our defaults) and TVM's build/export. The compile report is
made from the plan and what the schedule phase returned.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import onnx

from . import onnx_io, output_paths, parallel_launch, signature, targets, tuning_db
from .compile_report import CompileReport
from .formats import DEFAULT_TERNARY
from .layer_plan import LayerPlan
from .planner import TERNARY_FORMATS, LayerChoices, check_format_names, layer_key, plan_layers

log = logging.getLogger(__name__)

__all__ = ["Compiled", "LayerChoices", "Lowering", "TERNARY_FORMATS", "build", "compile", "layer_key", "lower"]


@dataclass
class Compiled:
    executable: object
    report: CompileReport
    preset: targets.TargetPreset
    input_shapes: dict

    def export(self, path: str | os.PathLike) -> Path:
        """Write the shared library (cross-compiled for ARM presets), atomically, with our
        parallel launcher linked in (parallel_launch)."""
        path = Path(path)
        cross = targets.check_cross_compiler(self.preset) if self.preset.cross_compiler else None
        with output_paths.atomic_file(path) as tmp:
            parallel_launch.export(self.executable, tmp, cross)
        return path


@dataclass(frozen=True)
class Lowering:
    """The legalized Relax module with our primitives, the static input shapes, and the plan."""

    mod: object
    input_shapes: dict
    plan: LayerPlan


def legalize(mod, target):
    """TVM's CPU library dispatch, legalization and fusion: the module MetaSchedule tunes."""
    import tvm
    from tvm.relax.backend.cpu_generic import pipeline as cpu

    with target:
        return tvm.transform.Sequential(cpu.library_dispatch_passes(target) + cpu.legalize_passes(target))(mod)


def lower(model, target: targets.BuildTarget, choices: LayerChoices = LayerChoices(),
          measured: Mapping | None = None, input_shapes: dict | None = None) -> Lowering:
    """Quantized ONNX -> plan -> legalized Relax module with our primitives (before scheduling).
    `measured`: layer_key -> format from formats.json (format_choice)."""
    from .onnx_import import static_input_shapes, to_relax, warn_static_overrides
    from .passes import lower_to_primitives

    shapes = static_input_shapes(model, input_shapes)
    warn_static_overrides(model, input_shapes)
    check_format_names(model, choices.formats)
    imported = to_relax(model, shapes)
    plan = plan_layers(imported, target.isa_class, choices, measured)
    plan.log_float()
    mod = lower_to_primitives(plan)(imported)
    return Lowering(legalize(mod, target.tvm), shapes, plan)


# The Relax VM's main function compiled to machine code with the kernels (TVM's "compiled" mode)
# instead of bytecode the VM interprets: no interpreter dispatch per kernel call, which a small
# model pays on every one of its calls. Measured (AMD EPYC znver5, AVX-512 VNNI build, the two
# builds in one process, 100 turns of 20 runs): digits model 19.6 -> 17.8 us, LeNet 8.2 -> 7.1,
# MLP 10.1 -> 9.5, ResNet-44 138 -> 131, SVHN ConvNet even. The .so loads and runs as before.
VM_EXEC_MODE = "compiled"


# TVM's packed-API checks of every kernel argument (dtype, shape, strides, alignment, device of
# each tensor, asserted on every call) are left out of the model's library: its kernels are called
# only by its main function, with tensors the VM allocated for the shapes the compiler planned and
# constants it embedded, after main has checked the model's input (vm.builtin.check_tensor_info,
# match_shape: those stay). Measured (AMD EPYC znver1, AVX2 build of ResNet-44, two threads, the
# two builds one after the other, medians of 2000 runs): the time between two kernel launches
# 0.73 -> 0.58 us (45 launches a run), the whole model 0.976x in turns; the library 1.8 -> 0.5 MB.
BUILD_CONFIG = {"tirx.disable_assert": True}


def _build_context():
    """The caller's pass context with BUILD_CONFIG added."""
    import tvm

    now = tvm.transform.PassContext.current()
    return tvm.transform.PassContext(opt_level=now.opt_level, required_pass=list(now.required_pass),
                                     disabled_pass=list(now.disabled_pass), instruments=list(now.instruments),
                                     config={**dict(now.config), **BUILD_CONFIG})


def build(mod, target: targets.BuildTarget, database=None, tuning_dir: Path | None = None):
    """Schedules (tuned records of `database`, then our defaults), TVM's lowering to the VM, and
    the VM executable; returns (executable, schedule_apply.Scheduled)."""
    import tvm
    from tvm import relax
    from tvm.relax.backend.cpu_generic import pipeline as cpu

    from .schedule_apply import apply_schedules

    tgt = target.tvm
    with tgt:
        mod, scheduled = apply_schedules(mod, tgt, database, tuning_dir)
        mod = tvm.transform.Sequential(cpu.dataflow_lower_passes(tgt) + cpu.finalize_passes(tgt))(mod)
    with _build_context():
        return relax.build(mod, tgt, relax_pipeline=None, exec_mode=VM_EXEC_MODE), scheduled


def compile(  # noqa: A001 - the package's verb, as in tvm.compile
    model,
    target: str = "x86",
    *,
    target_json=None,
    formats: dict | None = None,
    default_ternary: str = DEFAULT_TERNARY,
    input_shapes: dict | None = None,
    tuning_log: str | os.PathLike | None = "auto",
    output: str | os.PathLike | None = None,
) -> Compiled:
    """Compile a quantized ONNX model (path or ModelProto) for a target preset.

    formats: per-layer format ("delta" | "sparse" | "packed" | "dot" | "int8" | "float"), by ONNX
    node name; default_ternary: the format of every other ternary layer without a measured choice.
    tuning_log: a MetaSchedule database directory, "auto" (the committed one for the target, if
    any) or None (hand-written default schedules only).
    """
    if not isinstance(model, onnx.ModelProto):
        model = onnx_io.load_model(model)
    if output is not None:
        output_paths.check_file(output, "output")  # fail before minutes of compilation
    check_format_names(model, formats or {})
    build_target = targets.resolve(target, target_json)
    if build_target.preset.cross_compiler and output is not None:
        targets.check_cross_compiler(build_target.preset)  # fail before minutes of compilation
    choices = LayerChoices(formats or {}, default_ternary, tuning_db.resolve(tuning_log, build_target))
    database = tuning_db.open_database(choices.tuning_dir, build_target.isa_class)
    # a foreign log's format choices were measured elsewhere: only a usable log's apply
    measured = tuning_db.load_format_choices(choices.tuning_dir) if database is not None else {}
    lowering = lower(model, build_target, choices, measured, input_shapes)
    mod = signature.attach(lowering.mod)  # so `deepchip run` checks inputs against it before running
    executable, scheduled = build(mod, build_target, database, choices.tuning_dir)
    report = CompileReport.of(build_target.describe(), lowering.plan, scheduled)
    compiled = Compiled(executable, report, build_target.preset, lowering.input_shapes)
    if output is not None:
        compiled.export(output)
    return compiled
