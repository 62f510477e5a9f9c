"""Runtime-only deployment: a directory a board can run a model from without the TVM compiler.

Layout of a bundle (everything for one architecture, taken from that architecture's wheels):
  model.so                 the compiled model (Relax VM executable + kernels)
  lib/libtvm_runtime.so    TVM's runtime (Relax VM, ~3 MB) from the apache-tvm wheel
  lib/libtvm_ffi.so        TVM's FFI core from the apache-tvm-ffi wheel
  python/tvm_ffi/          the tvm_ffi Python package (its lib/libtvm_ffi.so links to ../../../lib)
  python/typing_extensions.py  tvm_ffi's one pure-Python dependency
  run.py                   the runner: numpy + tvm_ffi + libtvm_runtime.so, never `import tvm`
  manifest.json            architecture, versions, files
The board needs only python3 and numpy (Debian: python3-numpy).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from . import output_paths
from .errors import InputError, ToolchainError
from .remote import check_arch, check_vm_library

RUNNER = Path(__file__).with_name("bundle_runner.py")
# parts of the tvm_ffi package a runner never needs (headers, sources); core.so links
# libtvm_ffi_testing.so, so that one stays
_SKIP = ("tvm_ffi/3rdparty/", "tvm_ffi/include/", "tvm_ffi/src/", "tvm_ffi/share/")
_PLATFORMS = {
    "aarch64": ["manylinux_2_28_aarch64", "manylinux2014_aarch64", "manylinux_2_17_aarch64"],
    "x86_64": ["manylinux_2_28_x86_64", "manylinux2014_x86_64", "manylinux_2_17_x86_64"],
}


def runtime_wheels(arch: str) -> dict[str, Path]:
    """The apache-tvm, apache-tvm-ffi and typing_extensions wheels for `arch` (cached download)."""
    from . import qemu_root as qemu

    if arch not in _PLATFORMS:
        raise InputError(f"--arch {arch!r}: choose one of {sorted(_PLATFORMS)}")
    if arch == "aarch64":
        wheels = qemu.download_wheels()
    else:
        cache = qemu.CACHE / f"wheels-{arch}"
        cache.mkdir(parents=True, exist_ok=True)
        specs = [s for s in qemu.wheel_specs() if s.split("==")[0] in ("apache-tvm", "apache-tvm-ffi", "typing_extensions")]
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--only-binary=:all:",
               *sum((["--platform", p] for p in _PLATFORMS[arch]), []), "--python-version", "3.11",
               "--implementation", "cp", "--no-deps", "-d", str(cache), *specs]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            raise ToolchainError(f"downloading {arch} runtime wheels failed: {res.stderr.strip()[-800:]}")
        wheels = sorted(cache.glob("*.whl"))
    found = {}
    for w in wheels:
        dist = w.name.split("-")[0].lower()
        if dist in ("apache_tvm", "apache_tvm_ffi", "typing_extensions"):
            found[dist] = w
    missing = {"apache_tvm", "apache_tvm_ffi", "typing_extensions"} - set(found)
    if missing:
        raise ToolchainError(f"runtime wheels for {arch} missing from the cache: {sorted(missing)}")
    return found


def _extract(wheel: Path, member: str, dest: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        try:
            info = z.getinfo(member)
        except KeyError:
            raise ToolchainError(f"{wheel.name} has no {member}") from None
        dest.parent.mkdir(parents=True, exist_ok=True)
        with z.open(info) as src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out)
        os.chmod(dest, (0o777 if member.endswith(".so") else 0o666) & ~output_paths.umask())


def _extract_tree(wheel: Path, prefix: str, dest_root: Path) -> int:
    n = 0
    with zipfile.ZipFile(wheel) as z:
        for name in z.namelist():
            if not name.startswith(prefix) or name.endswith("/") or name.startswith(_SKIP):
                continue
            _extract(wheel, name, dest_root / name)
            n += 1
    return n


def bundle(so_path: str | os.PathLike, out_dir: str | os.PathLike, arch: str = "aarch64") -> Path:
    """Write the runtime-only bundle of `so_path` for `arch` into `out_dir` (replaced atomically)."""
    so_path, out_dir = Path(so_path), Path(out_dir)
    target = output_paths.check_new_dir(out_dir, "bundle directory")
    if not so_path.is_file():
        raise InputError(f"{so_path}: no such model library")
    check_arch(so_path, arch, f"a bundle for {arch}")
    check_vm_library(so_path)
    if target.exists() and any(target.iterdir()) and not (target / "manifest.json").exists():
        raise InputError(f"{out_dir} exists and is not a bundle; refusing to overwrite it")
    wheels = runtime_wheels(arch)
    with output_paths.atomic_dir(out_dir) as tmp:
        shutil.copy2(so_path, tmp / "model.so")
        _extract(wheels["apache_tvm"], "tvm/lib/libtvm_runtime.so", tmp / "lib" / "libtvm_runtime.so")
        _extract(wheels["apache_tvm_ffi"], "tvm_ffi/lib/libtvm_ffi.so", tmp / "lib" / "libtvm_ffi.so")
        _extract_tree(wheels["apache_tvm_ffi"], "tvm_ffi/", tmp / "python")
        # one copy of libtvm_ffi.so: the Python package finds it through a relative link
        ffi_in_pkg = tmp / "python" / "tvm_ffi" / "lib" / "libtvm_ffi.so"
        ffi_in_pkg.unlink()
        ffi_in_pkg.symlink_to(Path("..", "..", "..", "lib", "libtvm_ffi.so"))
        _extract(wheels["typing_extensions"], "typing_extensions.py", tmp / "python" / "typing_extensions.py")
        shutil.copy2(RUNNER, tmp / "run.py")
        os.chmod(tmp / "run.py", 0o777 & ~output_paths.umask())
        files = sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.is_file() and "python/tvm_ffi" not in str(p))
        manifest = {
            "arch": arch,
            "model": "model.so",
            "source_model": str(so_path),
            "wheels": sorted(w.name for w in wheels.values()),
            "files": files,
            "size_bytes": sum(p.stat().st_size for p in tmp.rglob("*") if p.is_file() and not p.is_symlink()),
            "run": "python3 run.py --input x.npy -o y.npy",
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return out_dir
