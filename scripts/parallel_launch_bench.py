"""Our parallel launcher (tvm_deepchip/csrc/parallel_launch.c) against TVM's thread pool on this
machine: an empty two-task parallel region, and whole models (one compiled executable, exported
with our launcher and with TVM's pool). Every measurement is its own process (two launchers in
one process would compete for the cores), the two taking turns, `--sessions` each; a session's
figure is its median, and the fastest session counts (a process's memory layout and the host's
placement of the two vCPUs move whole sessions). Writes docs/parallel_launch.md and .json.

    python scripts/parallel_launch_bench.py [--models svhn_convnet resnet44] [--sessions 5]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
LAUNCHERS = ("ours", "tvm")


def _region_library(launcher: str, path: Path) -> None:
    """An empty parallel region: two rows of a 64-wide add, a row a task."""
    import tvm
    from tvm import te

    from tvm_deepchip import isa, parallel_launch

    x = te.placeholder((2, 64), "float32", name="x")
    y = te.compute((2, 64), lambda i, j: x[i, j] + 1, name="y")
    sch = tvm.s_tir.Schedule(te.create_prim_func([x, y]))
    sch.parallel(sch.get_loops(sch.get_sblock("y"))[0])
    lib = tvm.tirx.build(sch.mod, target=tvm.target.Target(isa.host_class().target))
    if launcher == "ours":
        parallel_launch.export(lib, path)
    else:
        lib.export_library(str(path))


def child(argv) -> None:
    """One session: `region LAUNCHER` or `model LIBRARY SHAPE RUNS`; prints its median in us."""
    import tvm

    import tvm_deepchip  # noqa: F401  (sizes TVM's pool as every tvm-deepchip process does)

    dev = tvm.cpu()
    if argv[0] == "region":
        path = Path(tempfile.mkdtemp()) / "region.so"
        _region_library(argv[1], path)
        f = tvm.runtime.load_module(str(path))
        x, y = (tvm.runtime.tensor(np.zeros((2, 64), "float32"), dev) for _ in range(2))
        res = f.time_evaluator("main", dev, number=10000, repeat=7)(x, y).results
    else:
        from tvm import relax

        library, shape, runs = argv[1], [int(v) for v in argv[2].split(",")], int(argv[3])
        vm = relax.VirtualMachine(tvm.runtime.load_module(library), dev)
        vm.set_input("main", tvm.runtime.tensor(np.random.default_rng(0).random(shape, dtype=np.float32), dev))
        ev = vm.time_evaluator("invoke_stateful", dev, number=1, repeat=runs, min_repeat_ms=0)
        ev("main")
        res = ev("main").results
    print(json.dumps({"us": float(np.median(res)) * 1e6}))


def session(*args: str) -> float:
    out = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        raise RuntimeError(f"session {args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])["us"]


def turns(sessions: int, args_of) -> dict:
    """The launchers' sessions, taking turns: {launcher: [median us of each session]}."""
    times = {k: [] for k in LAUNCHERS}
    for s in range(sessions):
        for k in (LAUNCHERS if s % 2 == 0 else LAUNCHERS[::-1]):
            times[k].append(session(*args_of(k)))
    return times


def model_libraries(name: str, workdir: Path) -> tuple[dict, list]:
    """The model's host-class build exported with each launcher, and its input shape."""
    import bench
    import bench_models

    from tvm_deepchip import isa

    case = bench_models.cases([name], [0.9])[0]
    _, compiled, _ = bench.build(case, isa.host_class().name, workdir)
    paths = {k: workdir / f"{name}.{k}.so" for k in LAUNCHERS}
    compiled.export(paths["ours"])
    compiled.executable.export_library(str(paths["tvm"]))
    return paths, list(case.x.shape)


def report(run: dict) -> str:
    m = run["machine"]
    lines = ["# Parallel launcher against TVM's thread pool", "",
             f"Measured by `python scripts/parallel_launch_bench.py --sessions {run['sessions']}` on {run['date']}, "
             f"building for `{m['host_class']}`. Machine: {m['cpu']} (LLVM cpu `{m['llvm_cpu']}`), {m['cores']} cores, "
             f"TVM_NUM_THREADS={run['threads']}. Each session its own process, the two launchers taking turns; a session's "
             "figure is its median, the table gives the fastest session and, in parentheses, all sessions.", "",
             "| what | our launcher us | TVM's pool us | TVM's / ours |", "| --- | --- | --- | --- |"]
    for row in run["rows"]:
        ours, tvm_ = min(row["ours"]), min(row["tvm"])
        all_ = lambda v: ", ".join(f"{t:.2f}" for t in v)  # noqa: E731
        lines.append(f"| {row['what']} | {ours:.2f} ({all_(row['ours'])}) | {tvm_:.2f} ({all_(row['tvm'])}) | "
                     f"{tvm_ / ours:.2f}x |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="*", default=["svhn_convnet", "resnet44"])
    ap.add_argument("--sessions", type=int, default=5)
    ap.add_argument("--runs", type=int, default=2000, help="model runs a session")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "parallel_launch.md")
    args = ap.parse_args(argv)
    import bench

    import tvm_deepchip  # noqa: F401

    run = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": bench.machine(),
           "sessions": args.sessions, "threads": os.environ.get("TVM_NUM_THREADS"), "rows": []}
    print("[launch] empty two-task region", file=sys.stderr, flush=True)
    run["rows"].append({"what": "empty two-task parallel region", **turns(args.sessions, lambda k: ("region", k))})
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            print(f"[launch] {name}: building", file=sys.stderr, flush=True)
            paths, shape = model_libraries(name, Path(tmp))
            shape_arg = ",".join(str(v) for v in shape)
            run["rows"].append({"what": f"{name} 90%, whole model", **turns(
                args.sessions, lambda k: ("model", str(paths[k]), shape_arg, str(args.runs)))})
            print(f"[launch] {name}: ours {min(run['rows'][-1]['ours']):.1f} us, TVM's {min(run['rows'][-1]['tvm']):.1f}",
                  file=sys.stderr, flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(run, indent=1))
    args.out.write_text(report(run))
    print(report(run))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2:])
    else:
        main()
