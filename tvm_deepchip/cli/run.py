"""`deepchip run model.so --input x.npy -o y.npy [--rpc HOST:PORT | --tracker HOST:PORT --key K]`."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from ..output_paths import atomic_file, check_file


def add_device_args(p) -> None:
    """The device options shared by run and bench."""
    p.add_argument("--rpc", metavar="HOST:PORT", help="TVM RPC server (QEMU device or a board)")
    p.add_argument("--tracker", metavar="HOST:PORT", help="TVM RPC tracker handing out devices")
    p.add_argument("--key", help="device key at the tracker (e.g. aarch64)")
    p.add_argument("--arch", default="aarch64", help="architecture of the remote device (default aarch64)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds before a silent device is an error")


def load_inputs(paths: list[str]) -> list[np.ndarray]:
    out = []
    for path in paths:
        try:
            x = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise InputError(f"--input {path}: cannot read a .npy array ({err})") from None
        if not isinstance(x, np.ndarray):  # an .npz archive
            x.close()
            raise InputError(f"--input {path}: is an .npz archive; give each input as its own .npy file "
                             f"(--input a.npy --input b.npy)")
        out.append(x)
    return out


def register(sub) -> None:
    p = sub.add_parser("run", help="run a compiled model locally or on an RPC device")
    p.add_argument("model", help="compiled model library (.so)")
    p.add_argument("--input", action="append", required=True, help=".npy input (repeat for several inputs)")
    p.add_argument("-o", "--output", help=".npy output (.npz for several outputs)")
    add_device_args(p)
    p.set_defaults(func=run)


def run(args) -> int:
    if args.output:
        check_file(args.output, "-o")
    from ..remote import run as run_model

    xs = load_inputs(args.input)
    out = run_model(args.model, xs, rpc=args.rpc, tracker=args.tracker, key=args.key,
                    timeout=args.timeout, arch=args.arch)
    outs = [out] if isinstance(out, np.ndarray) else out
    for i, o in enumerate(outs):
        print(f"output {i}: shape {tuple(o.shape)} dtype {o.dtype}")
    if args.output:
        with atomic_file(args.output) as tmp:
            with open(tmp, "wb") as f:
                if isinstance(out, np.ndarray):
                    np.save(f, out)
                else:
                    np.savez(f, **{f"out{i}": o for i, o in enumerate(outs)})
        print(f"wrote {Path(args.output)}")
    return 0
