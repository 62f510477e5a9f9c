"""The QEMU aarch64 device: TVM RPC servers run by user-mode QEMU inside the cached arm64 root.

`up()` starts servers (optionally behind a host RPC tracker) and records their pids in
.cache/qemu/pids.json, `status()` asks each one, `down()` stops only what `up` recorded.
QEMU timings are emulation timings, never ARM speed.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .errors import DeviceError
# the root's paths and provisioning, re-exported: `qemu.provision()` is the public entry
from .qemu_root import (CACHE, PARTIAL, QEMU_DIR, ROOTFS, WHEELS, download_wheels,  # noqa: F401
                        mount_runtime, provision, unmount, wheel_specs)

PIDS = QEMU_DIR / "pids.json"


def _load_pids() -> dict:
    try:
        return json.loads(PIDS.read_text())
    except (OSError, ValueError):
        return {"procs": [], "mounts": []}


def _save_pids(state: dict) -> None:
    tmp = PIDS.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=1))
    os.replace(tmp, PIDS)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie of ours counts as dead
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def _listening(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _spawn(cmd: list[str], log: Path) -> int:
    # own session = own process group, so down() can stop the server and its session children
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    return proc.pid


def up(port: int = 9090, n: int = 1, tracker: int | None = None, key: str = "aarch64",
       wait: float = 90.0) -> list[dict]:
    """Start n RPC servers on 127.0.0.1:port.. inside the arm64 root.

    With `tracker` (a port), also start a host RPC tracker there and register the servers with it
    under `key` (then they only take sessions handed out by the tracker). Additive: call it
    twice for direct servers plus a tracker fleet. Returns the new process records. `wait`
    bounds each start-up (the tracker's, then every server's answer): importing TVM takes seconds
    on an idle machine and can take minutes on a loaded one.
    """
    root = provision()
    state = _load_pids()
    ports = list(range(port, port + n)) + ([tracker] if tracker else [])
    for p in ports:
        if _listening(p):
            raise DeviceError(f"port 127.0.0.1:{p} is already in use; pick another --port or run `deepchip qemu down`")
    for m in mount_runtime(root):
        state["mounts"].append(m)
    _save_pids(state)
    new = []
    if tracker:
        pid = _spawn([sys.executable, "-m", "tvm.exec.rpc_tracker", "--host", "127.0.0.1", "--port",
                      str(tracker), "--port-end", str(tracker + 1)], QEMU_DIR / f"tracker-{tracker}.log")
        new.append({"role": "tracker", "pid": pid, "port": tracker})
        state["procs"].append(new[-1])
        _save_pids(state)
        try:
            _wait_port(tracker, wait, f"RPC tracker on 127.0.0.1:{tracker}")
        except DeviceError:
            stop(new[-1])
            raise
    for p in range(port, port + n):
        cmd = ["chroot", str(root), "/usr/bin/python3", "-m", "tvm.exec.rpc_server", "--host", "127.0.0.1",
               "--port", str(p), "--port-end", str(p + 1)]
        if tracker:
            cmd += ["--tracker", f"127.0.0.1:{tracker}", "--key", key]
        pid = _spawn(cmd, QEMU_DIR / f"server-{p}.log")
        rec = {"role": "server", "pid": pid, "port": p, "key": key if tracker else None,
               "tracker": tracker}
        new.append(rec)
        state["procs"].append(rec)
        _save_pids(state)
    try:
        _wait_answers(new, wait, key, tracker)
    except BaseException:
        for rec in new:  # a failed start leaves nothing running and nothing recorded
            stop(rec)
        raise
    return new


def _wait_answers(new: list[dict], wait: float, key: str, tracker) -> None:
    deadline = time.monotonic() + wait
    for rec in new:
        if rec["role"] != "server":
            continue
        while not _answers(rec):
            if not _alive(rec["pid"]):
                log = (QEMU_DIR / f"server-{rec['port']}.log").read_text(errors="replace")[-1500:]
                raise DeviceError(f"RPC server on port {rec['port']} exited during start-up:\n{log}")
            if time.monotonic() > deadline:
                raise DeviceError(f"RPC server on 127.0.0.1:{rec['port']} did not answer within {wait:g} s "
                                  f"(log: {QEMU_DIR / ('server-%d.log' % rec['port'])})")
            time.sleep(1.0)
        print(f"qemu: RPC server 127.0.0.1:{rec['port']} answers"
              + (f" (key {key!r} via tracker 127.0.0.1:{tracker})" if rec["tracker"] else ""), file=sys.stderr)


def _wait_port(port: int, wait: float, what: str) -> None:
    deadline = time.monotonic() + wait
    while not _listening(port):
        if time.monotonic() > deadline:
            raise DeviceError(f"{what} did not start within {wait:g} s")
        time.sleep(0.2)


def _answers(rec: dict) -> bool:
    """A direct server answers an RPC session; a tracker-registered one is listed by its tracker."""
    if not _alive(rec["pid"]):
        return False
    if rec["role"] == "tracker":
        return _listening(rec["port"])
    if rec.get("tracker"):
        return rec["port"] in _tracker_ports(rec["tracker"], rec["key"])
    from . import remote
    from .rpc_watchdog import bounded

    try:
        sess = remote.connect(rpc=f"127.0.0.1:{rec['port']}", timeout=10).session
        bounded(lambda: sess.cpu().exist, 10, "ping")
        return True
    except Exception:
        return False


def _tracker_ports(tport: int, key: str) -> set:
    import tvm.rpc

    from .rpc_watchdog import bounded

    try:
        if not _listening(tport):
            return set()
        summary = bounded(lambda: tvm.rpc.connect_tracker("127.0.0.1", tport).summary(), 5, "tracker summary")
    except Exception:
        return set()
    ports = set()
    for info in summary.get("server_info", []):
        if info.get("key", "").split(":")[-1] == key or info.get("key") == key:
            ports.add(int(info["addr"][1]))
    return ports


def serves(address: str | None) -> bool:
    """Is HOST:PORT an RPC server that `up` started here and that still runs? Timings from it are
    QEMU emulation timings; a board's (or any other server's) are not."""
    host, _, port = str(address or "").rpartition(":")
    if host not in ("127.0.0.1", "localhost") or not port.isdigit():
        return False
    return any(r["role"] == "server" and r["port"] == int(port) and _alive(r["pid"]) for r in _load_pids()["procs"])


def status() -> list[dict]:
    """Each recorded process with `alive` and `answers`."""
    out = []
    for rec in _load_pids()["procs"]:
        out.append(dict(rec, alive=_alive(rec["pid"]), answers=_answers(rec)))
    return out


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group, from /proc."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(") ", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            out.append(int(entry))
    return out


def _kill_group(pid: int, grace: float = 5.0) -> None:
    """SIGTERM the group (resumed if frozen), SIGKILL what is left; return once nothing is left."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
            os.killpg(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            try:
                os.waitpid(pid, os.WNOHANG)  # reap the leader if it is our child
            except ChildProcessError:
                pass
            if not group_members(pid):
                return
            time.sleep(0.1)


def stop(rec: dict) -> None:
    """Stop one recorded process group (used by down() and fault tests) and forget it."""
    _kill_group(rec["pid"])
    state = _load_pids()
    state["procs"] = [r for r in state["procs"] if r["pid"] != rec["pid"]]
    _save_pids(state)


def down() -> list[dict]:
    """Stop only what up() recorded (servers first, then the tracker) and unmount its mounts."""
    state = _load_pids()
    procs = sorted(state["procs"], key=lambda r: r["role"] == "tracker")
    for rec in procs:
        _kill_group(rec["pid"])
    unmount(state.get("mounts", []))
    if PIDS.exists():
        PIDS.unlink()
    return procs
