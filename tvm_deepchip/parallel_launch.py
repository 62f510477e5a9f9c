"""Our parallel launcher (csrc/parallel_launch.c) linked into every library we export.

The C file says why TVM's thread pool is replaced and how the library's kernels come to call
ours with no step of the loader's; this module compiles it with the compiler that links the
library (the ARM cross compiler for ARM presets) and adds its object to TVM's link. `load`
builds a TVM module the same way and loads it, so a kernel timed alone (format_choice) runs on
the launcher a whole model runs on.
"""
from __future__ import annotations

import atexit
import functools
import shutil
import subprocess
import tempfile
from pathlib import Path

SOURCE = Path(__file__).resolve().parent / "csrc" / "parallel_launch.c"
# TVM's ABI symbols the launcher defines (hidden): what a library's kernels call through
SYMBOLS = ("__TVMBackendParallelLaunch", "__TVMBackendParallelBarrier")


def compiler_for(cross_compiler: str | None) -> str:
    """The C compiler that links a library: the preset's cross compiler, else TVM's choice."""
    from tvm.support import cc

    found = cross_compiler or cc.get_cc()
    if found is None:
        raise RuntimeError("no C compiler found (g++, gcc, clang or cc on PATH, or CC/CXX): TVM needs one to link")
    return found


def compile_object(compiler: str, out_dir: Path) -> Path:
    """The launcher's object file, built by `compiler` in out_dir (its errors raised as they are)."""
    obj = Path(out_dir) / "deepchip_parallel_launch.o"
    cmd = [compiler, "-x", "c", "-std=gnu11", "-O2", "-fPIC", "-c", str(SOURCE), "-o", str(obj)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"compiling {SOURCE} failed ({' '.join(cmd)}):\n{proc.stdout}{proc.stderr}")
    return obj


@functools.lru_cache(maxsize=None)
def _object(compiler: str) -> Path:
    """The launcher's object for `compiler`, built once a process (a compile takes ~0.4 s with
    g++, and every export, tuning candidate and kernel timed alone links it) into a directory
    that lives as long as the process."""
    out_dir = Path(tempfile.mkdtemp(prefix="deepchip_launch_"))
    atexit.register(shutil.rmtree, out_dir, True)
    return compile_object(compiler, out_dir)


def fcompile(cross_compiler: str | None = None):
    """export_library's link function with the launcher's object added."""
    from tvm.support import cc

    compiler = compiler_for(cross_compiler)
    return cc.cross_compiler(compiler, options=["-pthread"], add_files=[str(_object(compiler))])


def export(module, path: str | Path, cross_compiler: str | None = None) -> None:
    """module.export_library(path) with our launcher linked in."""
    module.export_library(str(path), fcompile=fcompile(cross_compiler))


def load(module):
    """A built TVM module (tvm.tirx.build's) exported with our launcher and loaded back: the
    library a caller on this machine runs."""
    import tvm

    with tempfile.TemporaryDirectory(prefix="deepchip_lib_") as tmp:
        path = Path(tmp) / "lib.so"
        export(module, path)
        return tvm.runtime.load_module(str(path))
