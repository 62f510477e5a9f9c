"""A process for tests/test_parallel_launch.py: builds a parallel kernel, exports it with our
launcher (or TVM's pool: `--tvm`), runs it in the way asked, checks every result against numpy
and prints one JSON line of what it saw (the launcher reads its thread count once a process)."""
from __future__ import annotations

import argparse
import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROWS, COLS = 999, 37  # rows split over the tasks unevenly


def build():
    import tvm
    from tvm import te

    x = te.placeholder((ROWS, COLS), "int32", name="x")
    y = te.compute((ROWS, COLS), lambda i, j: x[i, j] * 3 + i, name="y")
    sch = tvm.s_tir.Schedule(te.create_prim_func([x, y]))
    i, _ = sch.get_loops(sch.get_sblock("y"))
    sch.parallel(i)
    return tvm.tirx.build(sch.mod, target="llvm")


def pool_threads() -> int:
    """This process's threads named as our launcher names its workers (a thread that ends between
    the listing and the read of its name, such as one of the exiting callers, is not one)."""
    return sum(_name(t) == "deepchip-pool" for t in os.listdir("/proc/self/task"))


def _name(task: str) -> str | None:
    try:
        return Path(f"/proc/self/task/{task}/comm").read_text().strip()
    except FileNotFoundError:
        return None


def main():
    import tvm

    from tvm_deepchip import parallel_launch

    ap = argparse.ArgumentParser()
    ap.add_argument("library")
    ap.add_argument("--tvm", action="store_true", help="export with TVM's own pool")
    ap.add_argument("--callers", type=int, default=1, help="Python threads calling the kernel at once")
    ap.add_argument("--fork", action="store_true", help="run it again in a fork()ed child")
    args = ap.parse_args()
    if args.tvm:
        build().export_library(args.library)
    else:
        parallel_launch.export(build(), args.library)
    kernel = {"main": tvm.runtime.load_module(args.library)["main"]}
    rng = np.random.default_rng(0)
    x_np = rng.integers(-1000, 1000, size=(ROWS, COLS), dtype=np.int32)
    want = x_np * 3 + np.arange(ROWS, dtype=np.int32)[:, None]

    def run(times: int) -> bool:
        dev = tvm.cpu()
        x, y = tvm.runtime.tensor(x_np, dev), tvm.runtime.tensor(np.zeros_like(x_np), dev)
        ok = True
        for _ in range(times):
            y.copyfrom(np.zeros_like(x_np))
            kernel["main"](x, y)
            ok &= bool((y.numpy() == want).all())
        return ok

    with ThreadPoolExecutor(args.callers) as ex:
        ok = all(ex.map(run, [200] * args.callers))
    seen = {"exact": ok, "pool_threads": pool_threads(), "threads": threading.active_count()}
    if args.fork:
        pid = os.fork()
        if pid == 0:
            os._exit(0 if run(50) else 1)
        _, status = os.waitpid(pid, 0)
        seen["child_exact"] = os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
