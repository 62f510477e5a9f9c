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

    report = options.report
    db = options.database  # the log's records of this build's ISA class (tuning_db.open_database)
    tuned = set()
    if db is not None:
        from tvm import relax

        with db:  # the pass reads Database.current() when given no work_dir
            mod = relax.transform.MetaScheduleApplyDatabase(enable_warning=False)(mod)
        tuned = {gv.name_hint for gv, f in mod.functions.items()
                 if isinstance(f, tvm.tirx.PrimFunc) and f.attrs is not None and f.attrs.get("tirx.is_scheduled")}
    mod = apply_default_schedules(mod, target, skip=tuned)
    for name in _deepchip_funcs(mod):
        report.schedules[name] = "tuned" if name in tuned else "default"
    for name in tuned:
        report.schedules.setdefault(name, "tuned")
    if options.tuning_dir is not None:
        report.tuning_log = str(options.tuning_dir) if db is not None else f"{options.tuning_dir} (ignored)"
    return mod
