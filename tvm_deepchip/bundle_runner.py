#!/usr/bin/env python3
"""Run a tvm-deepchip model bundle with the TVM runtime only (no compiler, no `import tvm`).

  python3 run.py --input x.npy -o y.npy [--model model.so] [--bench N]

Needs python3 and numpy; everything else (tvm_ffi, libtvm_runtime.so) is in this directory.
A tuple output is written as .npz (out0, out1, ...).
"""
import argparse
import ctypes
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "python"))

# TVM's thread binding off unless the user chose, as tvm_deepchip/threads.py does (before the
# runtime starts its pool): with it on, the first module a process loads ran its parallel kernels
# slower than one thread
os.environ.setdefault("TVM_BIND_THREADS", "0")

import numpy as np  # noqa: E402
import tvm_ffi  # noqa: E402

# the Relax VM and its builtins register themselves when the runtime library is loaded
ctypes.CDLL(os.path.join(HERE, "lib", "libtvm_runtime.so"), ctypes.RTLD_GLOBAL)

KDL_CPU, POOLED_ALLOCATOR = 1, 2


def load(model_path):
    lib = tvm_ffi.load_module(os.path.abspath(model_path))
    vm = lib["vm_load_executable"]()
    vm["vm_initialization"](KDL_CPU, 0, POOLED_ALLOCATOR)
    return lib, vm


def to_numpy(out):
    if isinstance(out, tvm_ffi.Tensor):
        return np.from_dlpack(out).copy()
    return [to_numpy(o) for o in out]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=os.path.join(HERE, "model.so"))
    p.add_argument("--input", action="append", required=True, help=".npy input (repeat for several)")
    p.add_argument("-o", "--output", help=".npy (or .npz for tuples) to write")
    p.add_argument("--bench", type=int, default=0, help="also time N runs and print the median ms")
    args = p.parse_args(argv)

    lib, vm = load(args.model)
    inputs = [np.ascontiguousarray(np.load(f)) for f in args.input]
    tensors = [tvm_ffi.from_dlpack(a) for a in inputs]
    out = to_numpy(vm["main"](*tensors))
    info = {"model": args.model, "tvm_imported": "tvm" in sys.modules, "machine": os.uname().machine}
    if isinstance(out, np.ndarray):
        info.update(shape=list(out.shape), dtype=str(out.dtype))
    if args.bench:
        times = []
        for _ in range(args.bench):
            t0 = time.perf_counter()
            vm["main"](*tensors)
            times.append((time.perf_counter() - t0) * 1e3)
        info["median_ms"] = float(np.median(times))
    if args.output:
        tmp = args.output + ".tmp"
        with open(tmp, "wb") as f:
            if isinstance(out, np.ndarray):
                np.save(f, out)
            else:
                np.savez(f, **{f"out{i}": o for i, o in enumerate(out)})
        os.replace(tmp, args.output)
    print(json.dumps(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
