"""Choose the schedule of every PrimFunc at build time: tuned (MetaSchedule database) first,
then the hand-written default of our primitives; TVM's own kernels keep TVM's lowering."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import tvm

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Scheduled:
    """What the schedule phase did, for the compile report."""

    schedules: dict = field(default_factory=dict)  # PrimFunc name -> "tuned" | "default"
    tuning_log: str | None = None  # the database applied, or "<path> (ignored)"


def _deepchip_funcs(mod) -> list[str]:
    return [gv.name_hint for gv, f in mod.functions.items() if gv.name_hint.startswith("deepchip_")]


def apply_schedules(mod: tvm.IRModule, target, database, tuning_dir: Path | None = None) -> tuple[tvm.IRModule, Scheduled]:
    """`database`: the log's records of this build's ISA class (tuning_db.open_database), or None;
    `tuning_dir`: where it was asked for (reported as ignored when `database` is None)."""
    from tvm_deepchip.schedules import apply_default_schedules

    tuned = set()
    if database is not None:
        from tvm import relax

        with database:  # the pass reads Database.current() when given no work_dir
            mod = relax.transform.MetaScheduleApplyDatabase(enable_warning=False)(mod)
        tuned = {gv.name_hint for gv, f in mod.functions.items()
                 if isinstance(f, tvm.tirx.PrimFunc) and f.attrs is not None and f.attrs.get("tirx.is_scheduled")}
    mod = apply_default_schedules(mod, target, skip=tuned)
    schedules = {name: "tuned" if name in tuned else "default" for name in _deepchip_funcs(mod)}
    for name in tuned:
        schedules.setdefault(name, "tuned")
    tuning_log = None
    if tuning_dir is not None:
        tuning_log = str(tuning_dir) if database is not None else f"{tuning_dir} (ignored)"
    return mod, Scheduled(schedules, tuning_log)
