#!/usr/bin/env python3
"""Keep only our primitives' records in a tuning log (MetaSchedule JSON database), in place.

Why: a record of one of TVM's own kernels (pools, reshapes, quantize) is applied before the
default schedules of schedules/tvm_ops.py, which were written after the committed x86 log was
tuned, and which now beat those records. Measured on an AMD EPYC (znver4, AVX-512 build, 2
threads), whole model with the committed log against no log, alternating in one process, 10 x
200 runs: the digits model 0.0348 vs 0.0321 ms and 0.0338 vs 0.0309, SVHN ConvNet 0.1938 vs 0.1887
(the only records that matched were those of max_pool2d and reshape).

    python3 scripts/prune_log.py tuning_logs/x86-znver4
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("log", type=Path, help="a tuning log directory (database_workload.json, database_tuning_record.json)")
    args = ap.parse_args(argv)

    from tvm.s_tir import meta_schedule as ms

    from tvm_deepchip.schedules import load_all, tagged_block
    from tvm_deepchip.tuning_db import RECORDS, WORKLOADS

    load_all()  # our tensor intrinsics, which records name
    if not (args.log / RECORDS).is_file() or not (args.log / WORKLOADS).is_file():
        print(f"{args.log}: not a tuning log ({WORKLOADS}, {RECORDS})", file=sys.stderr)
        return 2
    old = ms.database.JSONDatabase(str(args.log / WORKLOADS), str(args.log / RECORDS), allow_missing=False)
    records = old.get_all_tuning_records()
    with tempfile.TemporaryDirectory(dir=args.log.parent) as tmp:
        new = ms.database.JSONDatabase(str(Path(tmp) / WORKLOADS), str(Path(tmp) / RECORDS), allow_missing=True)
        kept = 0
        for rec in records:
            mod = rec.workload.mod
            if not any(tagged_block(f) is not None for f in mod.functions.values()):
                continue
            new.commit_tuning_record(ms.database.TuningRecord(rec.trace, new.commit_workload(mod), rec.run_secs,
                                                              rec.target, rec.args_info))
            kept += 1
        for name in (WORKLOADS, RECORDS):
            os.replace(Path(tmp) / name, args.log / name)  # same file system: each file whole or not
    print(f"{args.log}: kept {kept} of {len(records)} records (our primitives')")
    return 0


if __name__ == "__main__":
    sys.exit(main())
