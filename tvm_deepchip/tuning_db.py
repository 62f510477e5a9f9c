"""Tuning databases under tuning_logs/<target-dir>/ in MetaSchedule's JSON format."""
from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)


def committed_dir(target_name: str) -> Path | None:
    from importlib import resources

    base = Path(str(resources.files("tvm_deepchip.tuning_logs")))
    for cand in sorted(base.glob(f"{target_name}*")):
        if (cand / "database_workload.json").is_file():
            return cand
    return None


def open_database(tuning_log, target_name: str):
    """A MetaSchedule JSONDatabase, or None. "auto" means the committed one, if any."""
    if tuning_log is None:
        return None
    path = committed_dir(target_name) if tuning_log == "auto" else Path(tuning_log)
    if path is None:
        return None
    work, rec = path / "database_workload.json", path / "database_tuning_record.json"
    if not (work.is_file() and rec.is_file()):
        log.warning("tuning log %s: no database_workload.json/database_tuning_record.json; ignored", path)
        return None
    from tvm.s_tir import meta_schedule as ms

    try:
        return ms.database.JSONDatabase(str(work), str(rec), allow_missing=False)
    except Exception as err:  # a corrupt log is reported and ignored, never fatal
        log.warning("tuning log %s is unreadable (%s); ignored", path, str(err).splitlines()[0][:200])
        return None
