"""Run and time a compiled model on an RPC device (a QEMU aarch64 root or a real board), or locally.

Every remote step runs under a watchdog (rpc_watchdog.bounded) within one time budget per job,
so a dead, frozen or busy device gives a DeviceError naming its address instead of a hang. The
server also gets that budget as its session timeout and drops the session on its own.
"""
from __future__ import annotations

import gc
import os
import socket
import struct
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import signature
from .errors import DeviceError, InputError
from .rpc_watchdog import bounded, new_sockets, shutdown_sockets, socket_peers

# ELF e_machine values of the architectures we meet (elf.h)
_EM = {3: "x86", 40: "arm", 62: "x86_64", 183: "aarch64", 243: "riscv"}
PROBE_TIMEOUT = 3.0  # seconds to decide that nothing listens on HOST:PORT


def elf_arch(path: str | os.PathLike) -> str:
    """Architecture of an ELF shared library from its header (e_machine), e.g. 'x86_64', 'aarch64'."""
    try:
        with open(path, "rb") as f:
            head = f.read(20)
    except OSError as err:
        raise InputError(f"{path}: cannot read model library ({err.strerror})") from None
    if len(head) < 20 or head[:4] != b"\x7fELF":
        raise InputError(f"{path}: not an ELF shared library (expected a .so from `deepchip compile`)")
    endian = "<" if head[5] == 1 else ">"
    (machine,) = struct.unpack(endian + "H", head[18:20])
    return _EM.get(machine, f"e_machine={machine}")


def check_arch(path: str | os.PathLike, expected: str, where: str) -> None:
    got = elf_arch(path)
    if got != expected:
        raise InputError(
            f"{path} is built for {got}, but {where} needs {expected}; "
            f"compile it with `deepchip compile --target {'aarch64' if expected == 'aarch64' else 'x86'}`"
        )


# what `export_library` of a Relax VM executable defines: the serialized executable and its
# imported modules (a plain C library, or a TIR-only build, has no such symbol)
_VM_BLOB = "__tvm_ffi__library_bin"


def check_vm_library(path: str | os.PathLike) -> None:
    """InputError unless `path` is a TVM library holding a Relax VM executable (any architecture)."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    elf_arch(path)  # readable and ELF, or a clear error
    try:
        with open(path, "rb") as f:
            dynsym = ELFFile(f).get_section_by_name(".dynsym")
            found = dynsym is not None and bool(dynsym.get_symbol_by_name(_VM_BLOB))
    except ELFError as err:
        raise InputError(f"{path}: not a readable ELF shared library ({err})") from None
    if not found:
        raise InputError(f"{path} is not a TVM Relax VM library (no {_VM_BLOB} symbol): "
                         f"expected a .so from `deepchip compile`")


def parse_addr(text: str, what: str = "--rpc") -> tuple[str, int]:
    host, sep, port = str(text).rpartition(":")
    if not sep or not host or not port.isdigit():
        raise InputError(f"{what} {text!r}: expected HOST:PORT, e.g. 127.0.0.1:9090")
    return host, int(port)


def _probe(host: str, port: int, what: str) -> None:
    """Fail in seconds, not after TVM's minute of retries, when nothing listens."""
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT):
            pass
    except OSError as err:
        raise DeviceError(
            f"no {what} answers at {host}:{port} ({err.strerror or err}); "
            f"start one with `deepchip qemu up` or `python3 -m tvm.exec.rpc_server` on the board"
        ) from None


@dataclass
class Remote:
    """An RPC session, where it came from (for error messages) and the deadline of its work."""

    session: Any
    where: str
    timeout: float
    deadline: float = 0.0
    sockets: dict = field(default_factory=dict)  # the session's sockets, shut down on timeout

    def __post_init__(self):
        self.deadline = self.deadline or time.monotonic() + self.timeout

    def call(self, fn: Callable[[], Any], what: str):
        """fn() bounded by what is left of the session's time budget."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise DeviceError(f"{what} on {self.where}: the {self.timeout:g} s budget is used up")
        return bounded(fn, left, f"{what} on {self.where}", on_timeout=lambda: shutdown_sockets(self.sockets))

    @property
    def server(self) -> str | None:
        """HOST:PORT of the RPC server this session talks to (the peer of its socket)."""
        peers = sorted({f"{p[0]}:{p[1]}" for p in self.sockets.values() if isinstance(p, tuple) and len(p) >= 2})
        return peers[0] if peers else None

    def close(self) -> None:
        """Drop the session now (TVM closes it when the last reference goes; cycles need gc)."""
        self.session = None
        gc.collect()


def connect(rpc: str | None = None, tracker: str | None = None, key: str | None = None,
            timeout: float = 60.0) -> Remote:
    """An RPC session to HOST:PORT, or to a free device under `key` from a tracker.

    `timeout` bounds the whole job (connect, wait for a free device, every remote call after it)
    and, with a margin, is the server's session timeout, after which it kills the session itself.
    """
    import tvm.rpc

    start = time.monotonic()

    session_timeout = max(1, int(timeout) + 5)
    if rpc and tracker:
        raise InputError("give either --rpc HOST:PORT or --tracker HOST:PORT --key KEY, not both")
    if rpc:
        host, port = parse_addr(rpc, "--rpc")
        _probe(host, port, "TVM RPC server")
        where = f"RPC server {host}:{port}"
        before = socket_peers()
        sess = bounded(lambda: tvm.rpc.connect(host, port, session_timeout=session_timeout),
                       timeout, f"connecting to {where} (busy with another session?)",
                       on_timeout=lambda: shutdown_sockets(new_sockets(before)))
        return Remote(sess, where, timeout, start + timeout, new_sockets(before))
    if tracker:
        if not key:
            raise InputError("--tracker needs --key KEY (the device key servers registered with)")
        host, port = parse_addr(tracker, "--tracker")
        _probe(host, port, "TVM RPC tracker")

        def left() -> float:  # what is left of the job's budget
            return max(0.1, start + timeout - time.monotonic())

        before = socket_peers()
        tsess = bounded(lambda: tvm.rpc.connect_tracker(host, port), left(), f"connecting to tracker {host}:{port}",
                        on_timeout=lambda: shutdown_sockets(new_sockets(before)))
        tracker_sockets = new_sockets(before)  # shut down on timeout: closing does not wake a blocked recv
        known = bounded(lambda: _tracker_keys(tsess), left(), f"asking tracker {host}:{port} for its keys",
                        on_timeout=lambda: shutdown_sockets(tracker_sockets))
        if known is not None and key not in known:
            tsess.close()
            raise DeviceError(
                f"tracker {host}:{port} has no server registered under key {key!r} "
                f"(registered keys: {sorted(known) or 'none'})"
            )
        where = f"device key {key!r} via tracker {host}:{port}"
        # request() blocks until a device is free; closing the tracker socket on timeout drops
        # the queued request so a late match does not hold a device for nobody
        before = socket_peers()
        sess = bounded(lambda: tsess.request(key, priority=1, session_timeout=session_timeout, max_retry=1),
                       left(), f"waiting for a free device with key {key!r} from tracker {host}:{port}",
                       on_timeout=lambda: (shutdown_sockets(tracker_sockets), shutdown_sockets(new_sockets(before))))
        tsess.close()
        return Remote(sess, where, timeout, start + timeout, new_sockets(before))
    raise InputError("no device given: pass --rpc HOST:PORT or --tracker HOST:PORT --key KEY")


def _tracker_keys(tsess) -> set | None:
    try:
        summary = tsess.summary()
    except Exception:  # an old tracker without summary: just request
        return None
    keys = set()
    for info in summary.get("server_info", []):
        k = info.get("key", "")
        keys.add(k.split(":", 1)[1] if k.startswith("server:") else k)
    keys.update(summary.get("queue_info", {}).keys())
    return keys


def _where(rpc, tracker, key) -> str:
    return f"RPC server {rpc}" if rpc else f"device key {key!r} via tracker {tracker}"


def _as_list(x) -> list[np.ndarray]:
    if isinstance(x, np.ndarray):
        return [x]
    if isinstance(x, (list, tuple)):
        return [np.asarray(a) for a in x]
    raise InputError(f"model input must be a numpy array or a list of them, got {type(x).__name__}")


def _to_numpy(out):
    """A VM result: one tensor, or a tuple of them (nested lists for nested tuples)."""
    if hasattr(out, "numpy"):
        return out.numpy()
    return [_to_numpy(o) for o in out]


def _load_vm(remote: Remote, so_path: str | os.PathLike, arch: str):
    from tvm import relax

    so_path = Path(so_path)
    check_arch(so_path, arch, remote.where)
    sess = remote.session
    name = f"deepchip-{uuid.uuid4().hex[:8]}-{so_path.name}"
    remote.call(lambda: sess.upload(str(so_path), target=name), f"uploading {so_path.name}")
    lib = remote.call(lambda: sess.load_module(name), f"loading {so_path.name}")
    dev = sess.cpu()
    vm = remote.call(lambda: relax.VirtualMachine(lib, dev), f"starting the Relax VM of {so_path.name}")
    return vm, dev


def run_remote(so_path, x, rpc: str | None = None, tracker: str | None = None, key: str | None = None,
               timeout: float = 60.0, arch: str = "aarch64"):
    """Upload the .so, run its `main` on x (array or list of arrays), return the output(s) as numpy."""
    import tvm

    check_arch(so_path, arch, _where(rpc, tracker, key))
    check_vm_library(so_path)
    remote = connect(rpc, tracker, key, timeout)
    try:
        vm, dev = _load_vm(remote, so_path, arch)
        xs = remote.call(lambda: _checked_inputs(vm, x, so_path), "checking the input")
        args = [remote.call(lambda a=a: tvm.runtime.tensor(a, dev), "sending the input") for a in xs]
        # the stateful calls are TVM's RPC-safe way: a tuple result comes back field by field
        remote.call(lambda: vm.set_input("main", *args), "setting the input")
        remote.call(lambda: vm.invoke_stateful("main"), f"running {Path(so_path).name}")
        return remote.call(lambda: _to_numpy(vm.get_outputs("main")), "fetching the output")
    finally:
        vm = dev = args = None
        remote.close()  # a direct server serves one session at a time: free it for the next job


def bench_remote(so_path, x, rpc: str | None = None, tracker: str | None = None, key: str | None = None,
                 number: int = 10, repeat: int = 3, timeout: float = 120.0, arch: str = "aarch64") -> dict:
    """Time `main` with the device-side time evaluator; returns median/mean/min/max ms per run."""
    import tvm

    check_arch(so_path, arch, _where(rpc, tracker, key))
    check_vm_library(so_path)
    remote = connect(rpc, tracker, key, timeout)
    try:
        vm, dev = _load_vm(remote, so_path, arch)
        xs = remote.call(lambda: _checked_inputs(vm, x, so_path), "checking the input")
        args = [remote.call(lambda a=a: tvm.runtime.tensor(a, dev), "sending the input") for a in xs]
        ftimer = vm.time_evaluator("main", dev, number=number, repeat=repeat)
        res = remote.call(lambda: list(ftimer(*args).results), f"timing {Path(so_path).name}")
        return {**_stats(res, number, repeat, remote.where), "server": remote.server}
    finally:
        vm = dev = args = ftimer = None
        remote.close()


def _checked_inputs(vm, x, so_path) -> list[np.ndarray]:
    """x as a list of arrays, checked against the model's inputs (InputError before any run)."""
    xs = _as_list(x)
    signature.check(vm, xs, Path(so_path).name)
    return xs


def _stats(results, number, repeat, where) -> dict:
    ms = np.asarray(list(results), dtype=np.float64) * 1e3
    return {"median_ms": float(np.median(ms)), "mean_ms": float(ms.mean()), "min_ms": float(ms.min()),
            "max_ms": float(ms.max()), "number": number, "repeat": repeat, "where": where}


def host_arch() -> str:
    import platform

    m = platform.machine()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(m.lower(), m)


def _local_vm(so_path):
    import tvm
    from tvm import relax

    check_arch(so_path, host_arch(), "this machine")
    check_vm_library(so_path)
    lib = tvm.runtime.load_module(str(so_path))
    dev = tvm.cpu()
    return relax.VirtualMachine(lib, dev), dev


def run_local(so_path, x):
    """Run a .so built for this machine (no RPC)."""
    import tvm

    vm, dev = _local_vm(so_path)
    out = vm["main"](*[tvm.runtime.tensor(a, dev) for a in _checked_inputs(vm, x, so_path)])
    return _to_numpy(out)


def bench_local(so_path, x, number: int = 10, repeat: int = 3) -> dict:
    import tvm

    vm, dev = _local_vm(so_path)
    args = [tvm.runtime.tensor(a, dev) for a in _checked_inputs(vm, x, so_path)]
    res = vm.time_evaluator("main", dev, number=number, repeat=repeat)(*args)
    return _stats(res.results, number, repeat, "local cpu")


def run(so_path, x, rpc=None, tracker=None, key=None, timeout: float = 60.0, arch: str = "aarch64"):
    """run_remote when a device is given, run_local otherwise (what `deepchip run` does)."""
    if rpc or tracker:
        return run_remote(so_path, x, rpc=rpc, tracker=tracker, key=key, timeout=timeout, arch=arch)
    return run_local(so_path, x)


def bench(so_path, x, rpc=None, tracker=None, key=None, number=10, repeat=3, timeout=120.0, arch="aarch64"):
    for what, v in (("number", number), ("repeat", repeat)):
        if not isinstance(v, int) or v < 1:
            raise InputError(f"--{what} {v!r}: expected a whole number of runs >= 1")
    if rpc or tracker:
        return bench_remote(so_path, x, rpc, tracker, key, number, repeat, timeout, arch)
    return bench_local(so_path, x, number, repeat)
