"""`deepchip bench model.so --input x.npy [--rpc HOST:PORT | --tracker HOST:PORT --key K]`."""
from __future__ import annotations

import json

from .run import add_device_args, load_inputs


def register(sub) -> None:
    p = sub.add_parser("bench", help="time a compiled model with TVM's time evaluator (locally or remote)")
    p.add_argument("model", help="compiled model library (.so)")
    p.add_argument("--input", action="append", required=True, help=".npy input (repeat for several)")
    p.add_argument("--number", type=int, default=10, help="runs per measurement (default 10)")
    p.add_argument("--repeat", type=int, default=3, help="measurements (default 3); the median is reported")
    p.add_argument("--json", action="store_true", help="print the statistics as JSON")
    add_device_args(p)
    p.set_defaults(func=run, timeout=120.0)


def run(args) -> int:
    from .. import qemu
    from ..remote import bench

    stats = bench(args.model, load_inputs(args.input), rpc=args.rpc, tracker=args.tracker, key=args.key,
                  number=args.number, repeat=args.repeat, timeout=args.timeout, arch=args.arch)
    if args.json:
        print(json.dumps(stats))
    else:
        print(f"{args.model}: median {stats['median_ms']:.3f} ms (min {stats['min_ms']:.3f}, "
              f"max {stats['max_ms']:.3f}; {stats['repeat']}x{stats['number']} runs on {stats['where']})")
    if qemu.serves(stats.get("server")):
        print(f"note: {stats['server']} is the QEMU device: these are emulation timings, not ARM speed")
    return 0
