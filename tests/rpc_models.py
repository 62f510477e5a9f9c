"""Small Relax models built with tvm.relax for the RPC / QEMU tests, compiled for x86 and aarch64.

The values are small integers, so float32 results are exact too: the aarch64 build, the x86 build
and numpy must agree bit for bit.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

AARCH64 = {"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mattr": ["+neon"]}
X86 = {"kind": "llvm", "mtriple": "x86_64-linux-gnu"}


def relax_module(fn_args, body):
    """main(*fn_args) whose dataflow block is `body(bb)`; its return value is the output."""
    from tvm import relax

    bb = relax.BlockBuilder()
    with bb.function("main", fn_args):
        with bb.dataflow():
            out = bb.emit_output(body(bb))
        bb.emit_func_output(out)
    return bb.get()


def matmul_relu(dtype: str = "int32", m: int = 4, k: int = 64, n: int = 16, seed: int = 0):
    """(module, x, expected): relu(x @ W + b) with a constant W and b."""
    from tvm import relax

    rng = np.random.default_rng(seed)
    w = rng.integers(-3, 4, size=(k, n)).astype(dtype)
    b = rng.integers(-20, 21, size=(n,)).astype(dtype)
    x = rng.integers(-5, 6, size=(m, k)).astype(dtype)
    xv = relax.Var("x", relax.TensorType((m, k), dtype))
    mod = relax_module([xv], lambda bb: relax.op.nn.relu(
        bb.emit(relax.op.add(bb.emit(relax.op.matmul(xv, relax.const(w))), relax.const(b)))))
    return mod, x, np.maximum(x @ w + b, 0).astype(dtype)


def chain_matmul(n: int = 1024):
    """A slow model under emulation (two n^3 matmuls), for killing a server mid-run."""
    from tvm import relax

    xv = relax.Var("x", relax.TensorType((n, n), "float32"))
    mod = relax_module([xv], lambda bb: relax.op.matmul(bb.emit(relax.op.matmul(xv, xv)), xv))
    return mod, np.ones((n, n), "float32")


def export(mod, target: dict, path: str | Path) -> Path:
    import tvm

    from tvm_deepchip import parallel_launch, targets

    ex = tvm.compile(mod, target=tvm.target.Target(target))
    cross = targets.get_preset("aarch64").cross_compiler if target["mtriple"].startswith("aarch64") else None
    parallel_launch.export(ex, path, cross)  # as a deployed library: our launcher linked in
    return Path(path)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_ports(n: int) -> int:
    """A port p with p .. p + n - 1 all free now (qemu.up takes consecutive ports)."""
    import socket

    for _ in range(50):
        p = free_port()
        try:
            for q in range(p + 1, p + n):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", q))
            return p
        except OSError:
            continue
    raise RuntimeError(f"no {n} consecutive free ports found")


class HostRPC:
    """A TVM RPC tracker and/or server started on this machine (x86), stopped by close().
    For tests of the device plumbing that must not depend on the QEMU device."""

    def __init__(self):
        self.procs = []

    def _start(self, *args) -> int:
        import subprocess
        import sys

        port = free_port()
        self.procs.append(subprocess.Popen([sys.executable, "-m", *args, "--host", "127.0.0.1", "--port", str(port),
                                            "--port-end", str(port + 1)], stdout=subprocess.DEVNULL,
                                           stderr=subprocess.DEVNULL, start_new_session=True))
        return port

    def tracker(self) -> str:
        port = self._start("tvm.exec.rpc_tracker")
        _wait(lambda: _listening(port), f"tracker on port {port}")
        return f"127.0.0.1:{port}"

    def server(self, tracker: str | None = None, key: str | None = None) -> tuple[str, int]:
        """(HOST:PORT, pid) of a new server, registered with `tracker` under `key` if given."""
        extra = ("--tracker", tracker, "--key", key) if tracker else ()
        port = self._start("tvm.exec.rpc_server", *extra)
        if tracker:
            _wait(lambda: key in _tracker_keys(tracker), f"server {port} at tracker {tracker}")
        else:
            _wait(lambda: _listening(port), f"server on port {port}")
        return f"127.0.0.1:{port}", self.procs[-1].pid

    def close(self) -> None:
        import os
        import signal

        for p in reversed(self.procs):
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait(30)
        self.procs = []


def _listening(port: int) -> bool:
    from tvm_deepchip.qemu import _listening as listening  # the same probe as the device's

    return listening(port)


def _tracker_keys(tracker: str) -> set:
    import tvm.rpc

    host, port = tracker.rsplit(":", 1)
    summary = tvm.rpc.connect_tracker(host, int(port)).summary()
    return {info["key"].split(":")[-1] for info in summary.get("server_info", [])}


def _wait(ready, what: str, limit: float = 120.0) -> None:
    import time

    deadline = time.monotonic() + limit
    while not ready():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not come up within {limit:g} s")
        time.sleep(0.5)
