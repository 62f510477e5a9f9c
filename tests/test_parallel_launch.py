"""tvm_deepchip/parallel_launch.py and csrc/parallel_launch.c: every library we export runs its
parallel loops on our launcher, exactly, on any thread count, from several callers and after
fork(); the loader cannot replace it; the ARM cross compiler builds it."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from tvm_deepchip import parallel_launch, targets
from tvm_deepchip.threads import USER_ENVS

HERE = Path(__file__).resolve().parent
PROBE = HERE / "parallel_launch_probe.py"


def probe(tmp_path, threads: int, *flags: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in USER_ENVS}
    env["TVM_NUM_THREADS"] = str(threads)
    out = subprocess.run([sys.executable, str(PROBE), str(tmp_path / "lib.so"), *flags], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def symbols(path: Path, section: str) -> dict:
    with open(path, "rb") as f:
        table = ELFFile(f).get_section_by_name(section)
        return {s.name: (s["st_info"]["bind"], s["st_info"]["type"]) for s in table.iter_symbols()} if table else {}


@pytest.mark.parametrize("threads", [1, 2, 3, 5, 64])
def test_parallel_kernel_is_exact_on_our_workers(tmp_path, threads):
    seen = probe(tmp_path, threads)
    assert seen["exact"]
    # the caller runs task 0; never more threads than the CPUs the process may use (the waits spin)
    assert seen["pool_threads"] == min(threads, len(os.sched_getaffinity(0))) - 1


def test_exported_library_keeps_the_launcher_from_the_loader(tmp_path):
    probe(tmp_path, 2)
    ours = tmp_path / "lib.so"
    for name in parallel_launch.SYMBOLS:
        assert name not in symbols(ours, ".dynsym")  # TVM's loader finds nothing to overwrite
        assert symbols(ours, ".symtab")[name] == ("STB_LOCAL", "STT_OBJECT")
    theirs = tmp_path / "tvm"
    theirs.mkdir()
    seen = probe(theirs, 2, "--tvm")
    assert seen["exact"] and seen["pool_threads"] == 0
    assert "__TVMBackendParallelLaunch" in symbols(theirs / "lib.so", ".dynsym")


def test_concurrent_callers_and_a_forked_child(tmp_path):
    seen = probe(tmp_path, 2, "--callers", "3", "--fork")
    assert seen["exact"] and seen["child_exact"]


def test_the_arm_cross_compiler_builds_the_launcher(tmp_path):
    compiler = targets.get_preset("aarch64").cross_compiler
    if shutil.which(compiler) is None:
        pytest.skip(f"{compiler} not installed (scripts/setup.sh installs it)")
    obj = parallel_launch.compile_object(compiler, tmp_path)
    with open(obj, "rb") as f:
        assert ELFFile(f)["e_machine"] == "EM_AARCH64"
    assert set(parallel_launch.SYMBOLS) <= set(symbols(obj, ".symtab"))


def test_a_broken_compiler_is_named(tmp_path):
    with pytest.raises(RuntimeError, match="parallel_launch.c"):
        parallel_launch.compile_object("false", tmp_path)
