#!/usr/bin/env python3
"""One-off migration (run once when block roles became annotations): give the primitive workloads
of a tuning log the block-role annotations the computes now declare (tvm_deepchip/primitives/roles.py).

A record matches a kernel only if the kernel's PrimFunc is structurally equal to the record's
workload, annotations included; the traces themselves refer to the epilogue by name and to the
other blocks through it, so they replay unchanged. Records point at workloads by line number:
each workload line is rewritten in place (same order), others are kept byte for byte. The roles
are read off the block names the computes used before (the last place that knows them).

    python3 scripts/migrate_log_roles.py tuning_logs/x86-znver4 tuning_logs/aarch64
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tvm_deepchip.primitives import roles  # noqa: E402


def old_role(block) -> str | None:
    """The role of a block of a primitive, by the names the computes gave them before roles."""
    name = str(block.name_hint)
    if name == roles.EPILOGUE_NAME:
        return roles.EPILOGUE
    if name.startswith("acc"):
        return roles.ACCUMULATOR
    if name.startswith("rows"):
        return roles.ROW_SUMS
    if roles.SPLIT_KEY in block.annotations or name == "xz":
        return roles.LAYOUT
    return None


def migrate_func(func):
    """The PrimFunc with its blocks' roles annotated, or None if it is not one of our primitives."""
    import tvm

    sch = tvm.s_tir.Schedule(func)
    try:
        blocks = sch.get_child_blocks(sch.get_sblock("root"))
    except Exception:  # noqa: BLE001 - not a TE-made function
        return None
    epilogue = [b for b in blocks if str(sch.get(b).name_hint) == roles.EPILOGUE_NAME]
    if not epilogue or not str(sch.get(epilogue[0]).annotations.get("schedule_rule", "")).startswith("deepchip_"):
        return None
    if any(roles.ROLE_KEY in sch.get(b).annotations for b in blocks):
        return None  # already migrated
    for b in blocks:
        role = old_role(sch.get(b))
        if role is not None:
            sch.annotate(b, roles.ROLE_KEY, role)
    return sch.mod["main"]


def migrate(log_dir: Path) -> int:
    import tvm
    from tvm.s_tir import meta_schedule as ms

    path = log_dir / "database_workload.json"
    lines, changed = [], 0
    for line in path.read_text().splitlines():
        if not line.strip():
            lines.append(line)
            continue
        mod = ms.database.Workload.from_json(json.loads(line)).mod
        func = migrate_func(mod["main"])
        if func is None:
            lines.append(line)
            continue
        shash, body = ms.database.Workload(tvm.IRModule({"main": func})).as_json()
        lines.append(json.dumps([str(shash), str(body)], separators=(",", ":")))
        changed += 1
    path.write_text("\n".join(lines) + "\n")
    return changed


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(f"{arg}: {migrate(Path(arg))} primitive workloads annotated")
