"""The arm64 Debian root of the QEMU device: built once, with the aarch64 TVM wheels installed.

`provision()` builds it under .cache/qemu/ (git-ignored). It is resumable: each step leaves a
marker, the root is built in `rootfs.partial` and renamed to `rootfs` only when complete, so a
re-run after an interruption continues without manual clean-up. Progress goes to stderr.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

from .errors import ToolchainError

CACHE = Path(os.environ.get("DEEPCHIP_CACHE", Path(__file__).resolve().parents[1] / ".cache"))
QEMU_DIR = CACHE / "qemu"
ROOTFS = QEMU_DIR / "rootfs"
PARTIAL = QEMU_DIR / "rootfs.partial"
WHEELS = CACHE / "wheels-aarch64"
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


def wheel_specs() -> list[str]:
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
    specs = wheel_specs()
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
        debs = QEMU_DIR / "debs"
        debs.mkdir(exist_ok=True)
        # Seen once on a loaded machine: an emulated maintainer script (libpam-modules) failed
        # in the configure stage and the same command then succeeded. One more try, from a
        # fresh directory (the .debs are cached, so it costs the configure stage only).
        for attempt in (1, 2):
            if PARTIAL.exists():
                _unmount_all_under(PARTIAL)
                shutil.rmtree(PARTIAL)
            try:
                _run(["debootstrap", "--arch=arm64", "--variant=minbase", f"--cache-dir={debs}",
                      "--include=python3,python3-pip", SUITE, str(PARTIAL)], "debootstrap", timeout=3600)
                break
            except ToolchainError as err:
                if attempt == 2:
                    raise
                prog.say(f"debootstrap failed, trying once more: {str(err).splitlines()[0]}")
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
