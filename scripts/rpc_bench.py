#!/usr/bin/env python3
"""Remote benchmark of one or several compiled models over TVM RPC; prints a table.

  python scripts/rpc_bench.py a.so b.so --input x.npy --rpc 127.0.0.1:9090
  python scripts/rpc_bench.py a.so=xa.npy b.so=xb.npy --tracker 127.0.0.1:9190 --key aarch64 --parallel 2
  python scripts/rpc_bench.py model.so --input x.npy            # no device: this machine

Each model is uploaded, loaded and timed with TVM's time evaluator on the device (median of
--repeat measurements of --number runs). With a tracker and --parallel N, N models are timed at
once on different devices of the fleet. On the QEMU device the numbers are emulation timings:
they show the deploy path works, never ARM speed (and parallel jobs share this machine's cores).
"""
from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from tvm_deepchip import qemu, remote
from tvm_deepchip.cli.run import load_inputs
from tvm_deepchip.errors import DeepChipError, InputError


def parse_jobs(specs: list[str], inputs: list[str]) -> list[tuple[Path, list[np.ndarray]]]:
    jobs = []
    for spec in specs:
        so, _, xs = spec.partition("=")
        files = xs.split(",") if xs else inputs
        if not files:
            raise InputError(f"{so}: no input; give --input x.npy or {so}=x.npy")
        jobs.append((Path(so), load_inputs(files)))
    return jobs


def bench_one(so: Path, xs, args) -> dict:
    row = {"model": so.name, "size_kb": so.stat().st_size / 1024 if so.exists() else 0.0}
    try:
        row["arch"] = remote.elf_arch(so)
        row.update(remote.bench(so, xs, rpc=args.rpc, tracker=args.tracker, key=args.key,
                                number=args.number, repeat=args.repeat, timeout=args.timeout, arch=args.arch))
    except DeepChipError as err:
        row["error"] = str(err)
    return row


def format_table(rows: list[dict]) -> str:
    head = f"{'model':28s} {'arch':8s} {'size KB':>8s} {'median ms':>10s} {'min ms':>9s} {'max ms':>9s} {'runs':>6s}  device"
    lines = [head, "-" * len(head)]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['model']:28s} {r.get('arch', '?'):8s} {r['size_kb']:8.0f} ERROR: {r['error']}")
            continue
        lines.append(f"{r['model']:28s} {r['arch']:8s} {r['size_kb']:8.0f} {r['median_ms']:10.3f} "
                     f"{r['min_ms']:9.3f} {r['max_ms']:9.3f} {r['repeat']:>3d}x{r['number']:<2d}  {r['where']}")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="+", metavar="MODEL.so[=X.npy[,Y.npy]]")
    p.add_argument("--input", action="append", default=[], help="input .npy used for every model without its own")
    p.add_argument("--rpc", metavar="HOST:PORT")
    p.add_argument("--tracker", metavar="HOST:PORT")
    p.add_argument("--key", default=None)
    p.add_argument("--arch", default="aarch64")
    p.add_argument("--number", type=int, default=10)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per model before the device counts as dead")
    p.add_argument("--parallel", type=int, default=1, help="models timed at once (tracker fleets only)")
    p.add_argument("--json", help="also write the rows as JSON here")
    args = p.parse_args(argv)
    if args.parallel > 1 and not args.tracker:
        p.error("--parallel needs --tracker (one device per concurrent job)")
    try:
        jobs = parse_jobs(args.models, args.input)
    except DeepChipError as err:
        print(f"rpc_bench: error: {err}", file=sys.stderr)
        return 2
    with ThreadPoolExecutor(max_workers=max(1, args.parallel)) as pool:
        rows = list(pool.map(lambda job: bench_one(job[0], job[1], args), jobs))
    print(format_table(rows))
    if any(qemu.serves(r.get("server")) for r in rows):
        print("note: QEMU device timings are emulation timings, not ARM speed")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
