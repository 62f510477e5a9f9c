"""Tuning databases under tuning_logs/<target-dir>/ in MetaSchedule's JSON format."""
from __future__ import annotations

import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)

WORKLOADS = "database_workload.json"
RECORDS = "database_tuning_record.json"


def default_dir(preset) -> Path:
    """The package's tuning_logs/<target-dir>/ for a preset, e.g. tuning_logs/x86-znver3."""
    from importlib import resources

    from .targets import target_dirname

    return Path(str(resources.files("tvm_deepchip.tuning_logs"))) / target_dirname(preset)


def resolve(tuning_log, preset) -> Path | None:
    """None, "auto" (the committed database of this exact target, if any) or a directory."""
    if tuning_log is None:
        return None
    if tuning_log == "auto":
        path = default_dir(preset)
        if (path / WORKLOADS).is_file():
            return path
        return _same_isa_sibling(preset, path)
    return Path(tuning_log)


# What our schedules read from an x86 target: the vector width and the VNNI instruction.
SCHEDULE_FEATURES = ("avx2", "avx512bw", "avx512vnni")


def _same_isa_sibling(preset, path: Path) -> Path | None:
    """Another CPU's committed log whose schedules see the same ISA (e.g. x86-znver5 on a
    znver4): a trace replays the same splits and intrinsics; the code is still generated for
    this CPU. None if there is no such log."""
    mcpu = preset.target.get("mcpu")
    if not mcpu or not path.parent.is_dir():
        return None
    from tvm.target import Target, codegen

    def features(cpu):
        tgt = Target({**preset.target, "mcpu": cpu})
        return tuple(codegen.target_has_features(f, tgt) for f in SCHEDULE_FEATURES)

    here = features(mcpu)
    for sib in sorted(path.parent.glob(f"{preset.name}-*")):
        if (sib / WORKLOADS).is_file() and features(sib.name[len(preset.name) + 1:]) == here:
            log.info("no tuning log for %s: using %s (same vector ISA)", path.name, sib)
            return sib
    return None


def _check_json_lines(path: Path) -> str | None:
    """MetaSchedule reads these files line by line; say which line is broken instead of crashing."""
    for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            return f"{path}:{n}: not JSON ({err.msg})"
        if not isinstance(row, list):
            return f"{path}:{n}: not a MetaSchedule record (expected a JSON list)"
    return None


def open_database(path: Path | None):
    """A MetaSchedule JSONDatabase for `path`, or None (with a warning naming the path) if the
    directory is missing, incomplete, corrupt or foreign. Never raises."""
    if path is None:
        return None
    work, rec = path / WORKLOADS, path / RECORDS
    if not (work.is_file() and rec.is_file()):
        log.warning("tuning log %s: no %s and %s there; ignored", path, WORKLOADS, RECORDS)
        return None
    problem = _check_json_lines(work) or _check_json_lines(rec)
    if problem:
        log.warning("tuning log ignored: %s", problem)
        return None
    from tvm.s_tir import meta_schedule as ms

    from tvm_deepchip.schedules import load_all

    load_all()  # records may tensorize with our intrinsics: register them first
    try:
        db = ms.database.JSONDatabase(str(work), str(rec), allow_missing=False)
        len(db)  # force a full read
        return db
    except Exception as err:  # a foreign or damaged log is reported and ignored, never fatal
        log.warning("tuning log %s is unreadable (%s); ignored", path, str(err).strip().splitlines()[-1][:200])
        return None


FORMATS = "formats.json"


def load_format_choices(path: Path | None) -> dict:
    """layer_key -> format recorded by `deepchip tune --choose-formats` (empty if none)."""
    if path is None or not (path / FORMATS).is_file():
        return {}
    try:
        rows = json.loads((path / FORMATS).read_text())
        return {k: v["format"] for k, v in rows.items()}
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as err:
        log.warning("format choices %s unreadable (%s); ignored", path / FORMATS, err)
        return {}
