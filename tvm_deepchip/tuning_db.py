"""Tuning databases under tuning_logs/ in MetaSchedule's JSON format, and which builds they fit.

Every tuning record stores the target it was measured on; a log belongs to the ISA class of those
targets (isa.classify). A build uses only records of its own class: a trace replays splits,
vector widths and intrinsics of its class, and another class's (AVX-512 on an AVX2 build, sdot on
x86) can make LLVM abort the whole process. So a log of another class is reported and ignored,
and a log mixing classes gives the build only the records of its class (with a warning).
"""
from __future__ import annotations

import json
import logging
import tempfile
from collections import Counter
from pathlib import Path

from . import isa

log = logging.getLogger(__name__)

WORKLOADS = "database_workload.json"
RECORDS = "database_tuning_record.json"


def logs_root() -> Path:
    """The package's tuning_logs/ directory (the committed logs)."""
    from importlib import resources

    return Path(str(resources.files("tvm_deepchip.tuning_logs")))


def default_dir(preset) -> Path:
    """Where `tune` writes by default: tuning_logs/<target-dir>/, e.g. tuning_logs/x86-znver3."""
    from .targets import target_dirname

    return logs_root() / target_dirname(preset)


def resolve(tuning_log, target) -> Path | None:
    """None, "auto" (the committed log of the build's ISA class, if any) or a directory.
    `target`: the build's targets.BuildTarget (its class, as isa.py gave it)."""
    if tuning_log is None:
        return None
    if tuning_log == "auto":
        return committed_log(target.isa_class, prefer=default_dir(target.preset).name)
    return Path(tuning_log)


def committed_log(cls: isa.IsaClass, root: Path | None = None, prefer: str | None = None) -> Path | None:
    """A log under `root` (default: the package's tuning_logs/) whose records are all of class
    `cls`, e.g. tuning_logs/x86-znver4 for x86-avx512-vnni: the traces replay the same vector
    width and intrinsics, the code is still generated for this CPU. Tried first: the directory
    named `prefer`, then the one named after the class. None if there is none."""
    root = root if root is not None else logs_root()
    if not root.is_dir():
        return None
    dirs = sorted((d for d in root.iterdir() if (d / WORKLOADS).is_file() and (d / RECORDS).is_file()),
                  key=lambda d: (d.name != prefer, d.name != cls.name, d.name))
    for d in dirs:
        if set(record_classes(d / RECORDS)) == {cls.name}:
            if d.name != prefer:
                log.info("tuning log for %s: %s (same ISA class)", cls.name, d)
            return d
    return None


def _class_name(target, cache: dict) -> str | None:
    """The ISA class name of a record's target dict; None for a target that is not one of our CPUs."""
    key = json.dumps(target, sort_keys=True)
    if key not in cache:
        try:
            cache[key] = isa.classify(target).name
        except Exception:  # noqa: BLE001 - not a CPU target of ours, or not a target at all
            cache[key] = None
    return cache[key]


def _rows(path: Path):
    """(line, parsed JSON or None) of each non-blank line."""
    for line in path.read_text(errors="replace").splitlines():
        if line.strip():
            try:
                yield line, json.loads(line)
            except json.JSONDecodeError:
                yield line, None


def _record_target(row):
    """The target of a MetaSchedule tuning record row [workload, [trace, run_secs, target, args]]."""
    try:
        target = row[1][2]
    except (TypeError, IndexError, KeyError):
        return None
    return target if isinstance(target, dict) else None


def record_classes(path: Path) -> list[str | None]:
    """The ISA class name of each record of a record file, in file order (None: a record whose
    target is no CPU target of ours, or a line that is no record)."""
    cache: dict = {}
    out = []
    for _line, row in _rows(path):
        target = _record_target(row)
        out.append(_class_name(target, cache) if target is not None else None)
    return out


def _describe(classes) -> str:
    counts = Counter("an unknown target" if c is None else c for c in classes)
    return ", ".join(f"{name} ({n} records)" for name, n in counts.most_common())


def refuse_foreign(path: Path, cls: isa.IsaClass) -> None:
    """InputError if the log at `path` holds records of another class than `cls` (so `tune`
    never mixes classes in one log)."""
    if not (path / RECORDS).is_file():
        return
    others = [c for c in record_classes(path / RECORDS) if c != cls.name]
    if others:
        from .errors import InputError

        raise InputError(f"tuning log {path} holds records for {_describe(others)}, this build targets "
                         f"{cls.name}: tune into another --work-dir (a log holds one ISA class)")


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


def open_database(path: Path | None, cls: isa.IsaClass):
    """A MetaSchedule database of the records of `path` whose target is of class `cls` (the
    build's), or None (with a warning naming the path) if the directory is missing, incomplete,
    corrupt or holds no record of that class. Never raises."""
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
    classes = record_classes(rec)
    mine = [c == cls.name for c in classes]
    if classes and not any(mine):
        log.warning("tuning log %s was tuned for %s; this build targets %s: ignored",
                    path, _describe(classes), cls.name)
        return None
    if all(mine):
        return _load(path, work, rec)
    others = [c for c in classes if c != cls.name]
    log.warning("tuning log %s mixes ISA classes: %s ignored, only the %d records for %s (this build) used",
                path, _describe(others), sum(mine), cls.name)
    with tempfile.TemporaryDirectory(prefix="deepchip-log-") as tmp:
        kept = Path(tmp) / RECORDS
        kept.write_text("".join(line + "\n" for (line, _), ok in zip(_rows(rec), mine) if ok))
        return _load(path, work, kept)  # JSONDatabase reads the files when it is built


def _load(path: Path, work: Path, rec: Path):
    from tvm.s_tir import meta_schedule as ms

    from tvm_deepchip.schedules import load_all

    load_all()  # records may tensorize with our intrinsics: register them first
    try:
        db = ms.database.JSONDatabase(str(work), str(rec), allow_missing=False)
        len(db)  # force a full read
        return db
    except Exception as err:  # a damaged log is reported and ignored, never fatal
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
