"""The QEMU aarch64 device: an arm64 Debian root with the aarch64 TVM runtime, run by user-mode QEMU.

`provision()` builds it once under .cache/qemu/ (resumable: each step leaves a marker, the root is
built in `rootfs.partial` and renamed when complete). `up()` starts TVM RPC servers inside it
(optionally behind a host RPC tracker), `status()` asks each one, `down()` stops only what `up`
recorded. QEMU timings are emulation timings, never ARM speed.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

from .errors import DeviceError, ToolchainError

CACHE = Path(os.environ.get("DEEPCHIP_CACHE", Path(__file__).resolve().parents[1] / ".cache"))
QEMU_DIR = CACHE / "qemu"
ROOTFS = QEMU_DIR / "rootfs"
PARTIAL = QEMU_DIR / "rootfs.partial"
WHEELS = CACHE / "wheels-aarch64"
PIDS = QEMU_DIR / "pids.json"
SUITE = "bookworm"
# the runtime wheels, same versions as the host so both sides speak the same RPC protocol
PINNED = {"apache-tvm": "0.27.0.post1", "apache-tvm-ffi": "0.1.14.post0"}
UNPINNED = ["numpy", "ml_dtypes", "psutil", "tornado", "cloudpickle", "typing_extensions"]
BINFMT = Path("/proc/sys/fs/binfmt_misc")
BINFMT_CONF = Path("/usr/lib/binfmt.d/qemu-aarch64.conf")
APT_PACKAGES = "qemu-user-static binfmt-support debootstrap"


class _Progress:
    """`[k/n] message (elapsed)` lines on stderr, so a 4-minute debootstrap is not silent."""

    def __init__(self, total: int):
        self.total, self.k, self.t0 = total, 0, time.monotonic()

    def step(self, msg: str) -> None:
        self.k += 1
        self.say(f"[{self.k}/{self.total}] {msg}")

    def say(self, msg: str) -> None:
        print(f"qemu: {msg} ({time.monotonic() - self.t0:.0f}s)", file=sys.stderr, flush=True)


def _run(cmd: list[str], what: str, **kw) -> subprocess.CompletedProcess:
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, **kw)
    except FileNotFoundError:
        raise ToolchainError(f"{what}: {cmd[0]!r} not found; install with: apt-get install {APT_PACKAGES}")
    if res.returncode != 0:
        tail = "\n".join((res.stdout + res.stderr).strip().splitlines()[-15:])
        raise ToolchainError(f"{what} failed (exit {res.returncode}): {' '.join(cmd)}\n{tail}")
    return res


def ensure_binfmt() -> None:
    """Let the kernel run aarch64 ELF files through qemu-aarch64-static (also inside a chroot)."""
    if (BINFMT / "qemu-aarch64").exists():
        return
    if os.geteuid() != 0:
        raise ToolchainError("registering qemu-aarch64 with binfmt_misc needs root")
    if not BINFMT_CONF.exists():
        raise ToolchainError(f"{BINFMT_CONF} missing; install with: apt-get install {APT_PACKAGES}")
    if not (BINFMT / "register").exists():
        _run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT)], "mounting binfmt_misc")
    line = next(l for l in BINFMT_CONF.read_text().splitlines() if l.startswith(":"))
    try:
        (BINFMT / "register").write_text(line)
    except OSError as err:
        if not (BINFMT / "qemu-aarch64").exists():  # EEXIST from a concurrent registration is fine
            raise ToolchainError(f"registering qemu-aarch64 with binfmt_misc failed: {err}") from err


def _mounted(path: Path) -> bool:
    target = str(path.resolve())
    with open("/proc/mounts") as f:
        return any(line.split()[1] == target for line in f)


def mount_runtime(root: Path) -> list[str]:
    """Mount /proc in the root (psutil, multiprocessing); returns what was mounted.

    /dev is not bind-mounted on purpose: debootstrap already made the nodes the runtime needs
    (null, zero, urandom, ...), and a bind of the host's /dev inside .cache would let an
    `rm -rf .cache` delete the host's device nodes.
    """
    mp = root / "proc"
    mp.mkdir(exist_ok=True)
    if _mounted(mp):
        return []
    _run(["mount", "-t", "proc", "proc", str(mp)], f"mounting {mp}")
    return [str(mp)]


def unmount(paths) -> None:
    for p in reversed(list(paths)):
        if _mounted(Path(p)):
            subprocess.run(["umount", "-l", p], capture_output=True)


def _unmount_all_under(root: Path) -> None:
    """Detach every mount below root; refuse to go on if one stays (rmtree must never reach /dev)."""
    prefix = str(root.resolve()) + "/"

    def mounts():
        with open("/proc/mounts") as f:
            return [line.split()[1] for line in f if line.split()[1].startswith(prefix)]

    for mp in sorted(mounts(), key=len, reverse=True):
        subprocess.run(["umount", "-l", mp], capture_output=True)
    left = mounts()
    if left:
        raise ToolchainError(f"cannot unmount {left}; unmount them by hand, then re-run")


def _wheel_specs() -> list[str]:
    specs = [f"{n}=={v}" for n, v in PINNED.items()]
    for name in UNPINNED:
        try:
            specs.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            specs.append(name)
    return specs


def download_wheels(progress: _Progress | None = None) -> list[Path]:
    """aarch64 cp311 wheels fetched on the host (the emulated pip would be very slow)."""
    marker = WHEELS / ".complete"
    specs = _wheel_specs()
    if marker.exists() and marker.read_text() == "\n".join(specs):
        return sorted(WHEELS.glob("*.whl"))
    WHEELS.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "-q",
           "--only-binary=:all:", "--platform", "manylinux_2_28_aarch64", "--platform",
           "manylinux2014_aarch64", "--platform", "manylinux_2_17_aarch64", "--python-version", "3.11",
           "--implementation", "cp", "--no-deps", "-d", str(WHEELS), *specs]
    _run(cmd, "downloading aarch64 wheels")
    marker.write_text("\n".join(specs))
    return sorted(WHEELS.glob("*.whl"))


def _chroot_py(root: Path, code: str, what: str, timeout: float = 300) -> str:
    return _run(["chroot", str(root), "/usr/bin/python3", "-c", code], what, timeout=timeout).stdout


def provision(force: bool = False) -> Path:
    """Build (or reuse) the arm64 root; safe to re-run after an interruption at any point."""
    if ROOTFS.exists() and not force:
        ensure_binfmt()
        return ROOTFS
    if os.geteuid() != 0:
        raise ToolchainError("provisioning the QEMU root needs root (debootstrap, chroot, mount)")
    for tool in ("debootstrap", "chroot", "qemu-aarch64-static"):
        if shutil.which(tool) is None:
            raise ToolchainError(f"{tool!r} not found; install with: apt-get install {APT_PACKAGES}")
    prog = _Progress(5)
    try:
        QEMU_DIR.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ToolchainError(f"cannot create the device cache {QEMU_DIR}: {err.strerror}") from None
    prog.step("registering qemu-aarch64 with binfmt_misc")
    ensure_binfmt()

    marks = QEMU_DIR / "steps"
    marks.mkdir(exist_ok=True)
    prog.step(f"debootstrap arm64 {SUITE} into {PARTIAL} (~4 min)")
    if not (marks / "debootstrap").exists():
        # a half-done debootstrap cannot be resumed: start its directory over (the .debs are cached)
        if PARTIAL.exists():
            _unmount_all_under(PARTIAL)
            shutil.rmtree(PARTIAL)
        debs = QEMU_DIR / "debs"
        debs.mkdir(exist_ok=True)
        _run(["debootstrap", "--arch=arm64", "--variant=minbase", f"--cache-dir={debs}",
              "--include=python3,python3-pip", SUITE, str(PARTIAL)], "debootstrap", timeout=3600)
        (marks / "debootstrap").write_text(SUITE)
    else:
        prog.say("debootstrap already done, reusing")

    prog.step(f"downloading aarch64 wheels into {WHEELS}")
    wheels = download_wheels(prog)

    prog.step(f"installing {len(wheels)} wheels in the arm64 root (emulated pip, ~1 min)")
    names = sorted(w.name for w in wheels)
    if not (marks / "wheels").exists() or (marks / "wheels").read_text() != "\n".join(names):
        dst = PARTIAL / "tmp" / "wheels"
        shutil.rmtree(dst, ignore_errors=True)
        dst.mkdir(parents=True)
        for w in wheels:
            shutil.copy2(w, dst / w.name)
        _unmount_all_under(PARTIAL)  # stale mounts of an interrupted run
        mounted = mount_runtime(PARTIAL)
        try:
            _run(["chroot", str(PARTIAL), "/usr/bin/python3", "-m", "pip", "install", "-q",
                  "--no-index", "--no-deps", "--break-system-packages", "--disable-pip-version-check",
                  "--root-user-action=ignore", "--force-reinstall", *[f"/tmp/wheels/{n}" for n in names]],
                 "pip install in the arm64 root", timeout=1800)
        finally:
            unmount(mounted)
        shutil.rmtree(dst, ignore_errors=True)
        (marks / "wheels").write_text("\n".join(names))

    prog.step("checking `import tvm` under emulation")
    out = _chroot_py(PARTIAL, "import tvm, platform; print(tvm.__version__, platform.machine())", "import tvm check")
    if "aarch64" not in out:
        raise ToolchainError(f"the arm64 root does not run aarch64 python: {out!r}")
    prog.say(f"arm64 root ready: {out.strip()}")
    _unmount_all_under(PARTIAL)
    if ROOTFS.exists():  # force=True: the old root goes only once the new one is complete
        _unmount_all_under(ROOTFS)
        shutil.rmtree(ROOTFS)
    os.replace(PARTIAL, ROOTFS)
    shutil.rmtree(marks)
    return ROOTFS


# ---- running the device: RPC servers (and a host tracker) recorded in pids.json ----

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
    twice for direct servers plus a tracker fleet. Returns the new process records.
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
        _wait_port(tracker, 20, f"RPC tracker on 127.0.0.1:{tracker}")
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
    return new


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

    try:
        sess = remote.connect(rpc=f"127.0.0.1:{rec['port']}", timeout=10).session
        remote.bounded(lambda: sess.cpu().exist, 10, "ping")
        return True
    except Exception:
        return False


def _tracker_ports(tport: int, key: str) -> set:
    import tvm.rpc

    from .remote import bounded

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
