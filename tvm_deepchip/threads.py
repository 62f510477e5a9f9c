"""How many threads our kernels run on: one per physical core this process may use.

The libraries we export run their parallel loops on our own launcher (parallel_launch.py), which
reads TVM_NUM_THREADS (else OMP_NUM_THREADS, else the CPUs the process may use) at its first
launch; kernels built and run in this process without export (TVM's time evaluator on a built
module, tuning) run on TVM's pool, which the rest of this note is about.

TVM sizes its thread pool once, when the first parallel kernel runs, from TVM_NUM_THREADS (or
OMP_NUM_THREADS), else from half the logical CPUs on x86 ("ignore hyper-threading",
src/runtime/threading_backend.cc): on a machine whose CPUs are all physical cores (cloud VMs
with one thread per core, as ours: 2 vCPUs, 2 cores) that is half the machine. Measured on such
a 2-core znver5: TVM's default pool had 1 thread, so every kernel scheduled parallel ran on one
core (AlexNet's first fully connected layer 700 us; 370-410 us with 2 threads) while the peers
used both.

It also turns TVM's thread binding off (TVM_BIND_THREADS=0), unless the user set it. With binding
on (TVM's default), the first module a process loaded ran its parallel kernels slower than on one
thread, and a module loaded after it ran them at two cores' speed: measured on a 2-core AMD EPYC
znver5 VM, SVHN ConvNet (AVX-512 build) 120 us first / 63 us loaded again in the same process /
100 us with one thread; ResNet-44 169 / 140-159 us. With binding off every load ran at 62-64 us
(SVHN) and 135-138 us (ResNet-44). A deployed process loads one module, so it saw the slow case;
so did every benchmark session (each contender its own process). The OS places the two threads
on the two cores by itself.

`configure()` (run when the package is imported, before any kernel) sets TVM_NUM_THREADS to the
physical cores this process may run on, unless the user set TVM_NUM_THREADS or OMP_NUM_THREADS,
and TVM_BIND_THREADS to 0 unless the user set it. A deployed library loaded without tvm_deepchip
gets TVM's own defaults: README says to set both there (the bundle's run.py sets them).
"""
from __future__ import annotations

import os

ENV = "TVM_NUM_THREADS"
USER_ENVS = (ENV, "OMP_NUM_THREADS")
BIND_ENV = "TVM_BIND_THREADS"


def physical_cores() -> int:
    """Physical cores among the CPUs this process may run on (at least 1)."""
    import psutil

    allowed = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    logical = psutil.cpu_count(logical=True) or allowed
    physical = psutil.cpu_count(logical=False) or logical
    per_core = max(1, logical // physical)  # logical CPUs per physical core (SMT)
    return max(1, allowed // per_core)


def configure() -> int | None:
    """Set TVM_NUM_THREADS to physical_cores() unless the user chose a thread count, and thread
    binding off unless the user chose; returns the count set, or None when the user's choice stands."""
    os.environ.setdefault(BIND_ENV, "0")
    if any(os.environ.get(name) for name in USER_ENVS):
        return None
    n = physical_cores()
    os.environ[ENV] = str(n)
    return n
