"""Choose the schedule of every PrimFunc at build time: tuned (MetaSchedule database) first,
then the hand-written default of our primitives; TVM's own kernels keep TVM's lowering."""
from __future__ import annotations

import logging

import tvm

log = logging.getLogger(__name__)


def _deepchip_funcs(mod) -> list[str]:
    return [gv.name_hint for gv, f in mod.functions.items() if gv.name_hint.startswith("deepchip_")]


def apply_schedules(mod: tvm.IRModule, target, options) -> tvm.IRModule:
    from tvm_deepchip.schedules import apply_default_schedules

    from .tuning_db import open_database

    report = options.report
    db = open_database(options.tuning_dir)
    tuned = set()
    if db is not None:
        from tvm import relax

        before = {gv.name_hint: f for gv, f in mod.functions.items()}
        mod = relax.transform.MetaScheduleApplyDatabase(database=db, enable_warning=False)(mod)
        tuned = {gv.name_hint for gv, f in mod.functions.items() if before.get(gv.name_hint) is not f}
    mod = apply_default_schedules(mod, target, skip=tuned)
    for name in _deepchip_funcs(mod):
        report.schedules[name] = "tuned" if name in tuned else "default"
    for name in tuned:
        report.schedules.setdefault(name, "tuned")
    if options.tuning_dir is not None:
        report.tuning_log = str(options.tuning_dir) if db is not None else f"{options.tuning_dir} (ignored)"
    return mod
