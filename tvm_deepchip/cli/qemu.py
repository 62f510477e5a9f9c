"""`deepchip qemu up|down|status`: the QEMU aarch64 RPC device (emulation timings, not ARM speed)."""
from __future__ import annotations

import sys


def register(sub) -> None:
    p = sub.add_parser("qemu", help="provision and run a QEMU aarch64 TVM RPC device on this machine")
    qsub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    u = qsub.add_parser("up", help="provision once (cached in .cache/qemu), start RPC server(s)")
    u.add_argument("--port", type=int, default=9090, help="first server port on 127.0.0.1 (default 9090)")
    u.add_argument("--servers", type=int, default=1, help="number of RPC servers (ports PORT, PORT+1, ...)")
    u.add_argument("--tracker-port", type=int, help="also start an RPC tracker here and register the servers")
    u.add_argument("--key", default="aarch64", help="device key at the tracker (default aarch64)")
    u.add_argument("--wait", type=float, default=90.0, help="seconds to wait for each server to answer")
    qsub.add_parser("provision", help="only build the cached arm64 root (resumable)")
    qsub.add_parser("down", help="stop the processes `up` started and unmount what it mounted")
    qsub.add_parser("status", help="say whether each recorded server answers")
    p.set_defaults(func=run)


def run(args) -> int:
    from .. import qemu

    if args.action == "provision":
        print(qemu.provision())
        return 0
    if args.action == "up":
        for rec in qemu.up(args.port, args.servers, args.tracker_port, args.key, wait=args.wait):
            _print(rec)
        print("note: QEMU timings are emulation timings, not ARM speed", file=sys.stderr)
        return 0
    if args.action == "down":
        stopped = qemu.down()
        print(f"stopped {len(stopped)} process group(s)" + "".join(f"\n  {r['role']} pid {r['pid']} port {r['port']}" for r in stopped))
        return 0
    recs = qemu.status()
    if not recs:
        print("no QEMU RPC device recorded (run `deepchip qemu up`)")
        return 1
    for rec in recs:
        _print(rec)
    return 0 if all(r["answers"] for r in recs) else 1


def _print(rec: dict) -> None:
    where = f"127.0.0.1:{rec['port']}"
    extra = f" key={rec['key']} tracker=127.0.0.1:{rec['tracker']}" if rec.get("tracker") else ""
    state = ""
    if "answers" in rec:
        state = " answers" if rec["answers"] else (" alive, not answering" if rec["alive"] else " dead")
    print(f"{rec['role']:7s} {where:16s} pid {rec['pid']}{extra}{state}")
