"""tvm_deepchip/threads.py: TVM's pool gets one thread per physical core, unless the user chose."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tvm_deepchip import threads

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("logical, physical, allowed, cores", [
    (2, 2, 2, 2),  # a VM with one thread per core: TVM's own default would be 1
    (8, 4, 8, 4),  # SMT: one thread per physical core, as TVM's default
    (8, 4, 2, 1),  # pinned to one core's two hyper-threads
    (16, 16, 3, 3),  # taskset to 3 of 16 cores
])
def test_physical_cores_counts_cores_this_process_may_use(monkeypatch, logical, physical, allowed, cores):
    monkeypatch.setattr(psutil, "cpu_count", lambda logical=True: logical_ if logical else physical)
    logical_ = logical
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(allowed)))
    assert threads.physical_cores() == cores


def test_configure_sets_the_count_unless_the_user_chose_one(monkeypatch):
    for name in threads.USER_ENVS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(threads, "physical_cores", lambda: 3)
    assert threads.configure() == 3 and os.environ[threads.ENV] == "3"
    for name in threads.USER_ENVS:
        monkeypatch.delenv(threads.ENV, raising=False)
        monkeypatch.setenv(name, "1")
        assert threads.configure() is None
        assert os.environ.get(threads.ENV) == ("1" if name == threads.ENV else None)
        monkeypatch.delenv(name)


def test_configure_turns_thread_binding_off_unless_the_user_chose(monkeypatch):
    monkeypatch.delenv(threads.BIND_ENV, raising=False)
    threads.configure()
    assert os.environ[threads.BIND_ENV] == "0"
    monkeypatch.setenv(threads.BIND_ENV, "1")
    threads.configure()
    assert os.environ[threads.BIND_ENV] == "1"


def test_importing_the_package_sizes_tvms_pool():
    env = {k: v for k, v in os.environ.items() if k not in threads.USER_ENVS}
    code = ("import tvm_deepchip, tvm; from tvm_deepchip import threads; "
            "print(tvm.runtime.num_threads(), threads.physical_cores())")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    pool, cores = (int(v) for v in out.stdout.split())
    assert pool == cores
