"""Schedules of the DeepChip primitives: one row of schedules/table.py for a primitive whose
schedule is one skeleton everywhere, one file per target family where it really differs.

A schedule function `fn(sch, block, knobs)` is registered for (family, rule) with `register`.
Two ways in:
- MetaSchedule: each is also a global `s_tir.meta_schedule.<family>.<rule>`, which TVM's
  ApplyCustomRule calls for a block tagged with that schedule_rule (knobs sampled, so tunable);
- `apply_default_schedules`: at build time, for PrimFuncs with no tuning record (knobs fixed).
Families are TVM target keys: `cpu` (x86, schedules/x86) and `arm_cpu` (schedules/arm_cpu).
"""
from __future__ import annotations

import importlib
import pkgutil

import tvm

from tvm_deepchip.primitives import roles

from .common import Fixed, Sampled

_RULES: dict = {}  # (family, rule) -> schedule function
FAMILIES = ("x86", "arm_cpu")  # the packages of per-family schedule files
TARGET_KEYS = ("cpu", "arm_cpu")  # the target keys they register under
TAG = "schedule_rule"


def register(family: str, rule: str):
    def deco(fn):
        _RULES[(family, rule)] = fn
        tvm.register_global_func(
            f"s_tir.meta_schedule.{family}.{rule}", lambda sch, block: [fn(sch, block, Sampled())], override=True
        )
        return fn

    return deco


def load_all() -> None:
    """Import every schedule module: registers the schedules and our tensor intrinsics (which
    tuning records refer to by name, so this precedes opening any database)."""
    importlib.import_module(f"{__name__}.table")
    for fam in FAMILIES:
        pkg = importlib.import_module(f"{__name__}.{fam}")
        for info in pkgutil.iter_modules(pkg.__path__):
            importlib.import_module(f"{pkg.__name__}.{info.name}")


def family_of(target) -> str:
    keys = [str(k) for k in target.keys]
    return "arm_cpu" if "arm_cpu" in keys else "cpu"


def tagged_block(func) -> tuple[str, str] | None:
    """(block name, rule) of our primitive's epilogue (the block whose role is EPILOGUE; it
    carries the schedule_rule), or None for any other PrimFunc."""
    sch = tvm.s_tir.Schedule(func)
    found = roles.having(sch, roles.top_blocks(sch), roles.EPILOGUE)
    if not found:
        return None
    (block,) = found
    return sch.get(block).name_hint, str(sch.get(block).annotations[TAG])


def schedule_of(mod: tvm.IRModule, target, knobs=None) -> tvm.s_tir.Schedule:
    """A Schedule of the primitive in `mod["main"]`: our default (Fixed knobs) or, with Sampled
    knobs, a random point of its tuning space. Its trace can be recorded in a database."""
    sch = tvm.s_tir.Schedule(mod)
    schedule_in(sch, target, knobs or Fixed())
    return sch


def schedule_in(sch: tvm.s_tir.Schedule, target, knobs) -> tvm.s_tir.Schedule:
    """Apply our schedule of the primitive in `sch` (in place), under `target`: schedules read
    the ISA (vector width, VNNI) from the target in scope."""
    load_all()
    name, rule = tagged_block(sch.mod["main"])
    fn = _RULES.get((family_of(target), rule)) or _RULES[("cpu", rule)]
    with target:
        fn(sch, sch.get_sblock(name), knobs)
    return sch


def search_space(target):
    """The MetaSchedule space of one primitive: its schedule with Sampled knobs under `target`.
    (TVM's ApplyCustomRule would call the registered functions with no target in scope, so
    they could not see the vector width or the VNNI feature.)"""
    from tvm.s_tir import meta_schedule as ms

    return ms.space_generator.ScheduleFn(lambda sch: schedule_in(sch, target, Sampled()),
                                         sch_rules=[], postprocs=[], mutator_probs={})


def schedule_func(func, target, knobs=None):
    """Our default (or sampled) schedule of one primitive's PrimFunc."""
    return schedule_of(tvm.IRModule({"main": func}), target, knobs).mod["main"]


def apply_default_schedules(mod: tvm.IRModule, target, skip=()) -> tvm.IRModule:
    """Schedule every PrimFunc of `mod` not in `skip` (names already tuned): our primitives with
    their schedules, TVM's own kernels with schedules/tvm_ops.py."""
    load_all()
    out = tvm.IRModule(dict(mod.functions.items()), attrs=mod.attrs)
    from .tvm_ops import schedule_tvm_op

    for gv, func in mod.functions.items():
        if gv.name_hint in skip or not isinstance(func, tvm.tirx.PrimFunc):
            continue
        if func.attrs is not None and func.attrs.get("tirx.is_scheduled"):
            continue
        if tagged_block(func) is not None:
            out[gv] = schedule_func(func, target).with_attrs(func.attrs)
        else:
            out[gv] = schedule_tvm_op(func).with_attrs(func.attrs)
    return out
