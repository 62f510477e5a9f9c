"""The QEMU aarch64 device (provision, up, status, down) and the runtime-only bundle run inside it.

Needs the device: `eval "$(bash .ci/qemu_up.sh)"` (sets DEEPCHIP_RPC). Bundle checks that need
no device run always.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid

import numpy as np
import pytest

from tvm_deepchip import qemu, remote
from tvm_deepchip.bundle import bundle
from tvm_deepchip.errors import InputError

from rpc_models import AARCH64, X86, export, free_port, matmul_relu

RPC = os.environ.get("DEEPCHIP_RPC")
needs_rpc = pytest.mark.skipif(not RPC, reason="DEEPCHIP_RPC not set: run `eval \"$(bash .ci/qemu_up.sh)\"` first")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    d = tmp_path_factory.mktemp("qemu_mm")
    mod, x, ref = matmul_relu("int32", m=2, k=32, n=8, seed=1)
    np.save(d / "x.npy", x)
    return {"arm": export(mod, AARCH64, d / "arm.so"), "x86": export(mod, X86, d / "x86.so"),
            "x": x, "ref": ref, "dir": d}


def test_bundle_refuses_wrong_arch_and_foreign_dir(model, tmp_path):
    with pytest.raises(InputError, match="x86_64.*aarch64"):
        bundle(model["x86"], tmp_path / "b", arch="aarch64")
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(InputError, match="not a bundle"):
        bundle(model["arm"], foreign, arch="aarch64")
    assert (foreign / "notes.txt").read_text() == "keep me"


@needs_rpc
@pytest.mark.qemu
def test_provisioned_root_is_cached_and_arm64():
    t0 = time.monotonic()
    root = qemu.provision()
    assert time.monotonic() - t0 < 60  # reused, not rebuilt (a build takes minutes; generous on a shared machine)
    assert remote.elf_arch(root / "usr" / "bin" / "python3.11") == "aarch64"
    assert not qemu.PARTIAL.exists()  # the half-built root was renamed when complete


@needs_rpc
@pytest.mark.qemu
def test_status_sees_the_ci_server():
    port = remote.parse_addr(RPC)[1]
    recs = [r for r in qemu.status() if r["role"] == "server" and r["port"] == port]
    assert recs and recs[0]["alive"] and recs[0]["answers"]


@needs_rpc
@pytest.mark.qemu
def test_up_down_stop_only_recorded(monkeypatch, tmp_path, model):
    """A second device record (own pids.json): up answers, down stops exactly what up started."""
    monkeypatch.setattr(qemu, "PIDS", tmp_path / "pids.json")
    bystander = subprocess.Popen(["sleep", "120"], start_new_session=True)
    try:
        port = free_port()
        rec = qemu.up(port=port, n=1)[0]
        assert [r["answers"] for r in qemu.status()] == [True]
        y = remote.run_remote(model["arm"], model["x"], rpc=f"127.0.0.1:{port}", timeout=60)
        np.testing.assert_array_equal(y, model["ref"])
        stopped = qemu.down()
        assert [r["pid"] for r in stopped] == [rec["pid"]]
        assert qemu.group_members(rec["pid"]) == []
        assert not (tmp_path / "pids.json").exists()
        assert bystander.poll() is None  # not ours to stop
        # the CI device's mounts and server were not touched (they belong to the other record)
        assert remote.run_remote(model["arm"], model["x"], rpc=RPC, timeout=60).shape == model["ref"].shape
    finally:
        bystander.kill()
        bystander.wait()


@needs_rpc
@pytest.mark.qemu
def test_failed_up_leaves_nothing_running(monkeypatch, tmp_path):
    monkeypatch.setattr(qemu, "PIDS", tmp_path / "pids.json")
    started = []
    real_spawn = qemu._spawn
    monkeypatch.setattr(qemu, "_spawn", lambda cmd, log: started.append(real_spawn(cmd, log)) or started[-1])
    port = free_port()
    with pytest.raises(qemu.DeviceError, match=f"127.0.0.1:{port} did not answer within 0.5 s"):
        qemu.up(port=port, n=1, wait=0.5)  # emulated `import tvm` takes seconds: too short on purpose
    assert len(started) == 1 and qemu.group_members(started[0]) == []
    assert qemu.status() == []


@needs_rpc
@pytest.mark.qemu
def test_cli_qemu_status_and_run(model):
    st = subprocess.run(["deepchip", "qemu", "status"], capture_output=True, text=True, timeout=120)
    assert st.returncode == 0 and "answers" in st.stdout, st.stdout + st.stderr
    out = model["dir"] / "y_cli.npy"
    res = subprocess.run(["deepchip", "run", str(model["arm"]), "--input", str(model["dir"] / "x.npy"),
                          "-o", str(out), "--rpc", RPC], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    np.testing.assert_array_equal(np.load(out), model["ref"])
    bench = subprocess.run(["deepchip", "bench", str(model["arm"]), "--input", str(model["dir"] / "x.npy"),
                            "--rpc", RPC, "--number", "2", "--repeat", "2", "--json"],
                           capture_output=True, text=True, timeout=120)
    assert bench.returncode == 0, bench.stderr
    stats = json.loads(bench.stdout.splitlines()[0])
    assert stats["median_ms"] > 0 and stats["where"] == f"RPC server {RPC}"
    bad = subprocess.run(["deepchip", "run", str(model["x86"]), "--input", str(model["dir"] / "x.npy"),
                          "--rpc", RPC], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "x86_64" in bad.stderr and "aarch64" in bad.stderr


@pytest.fixture(scope="module")
def qconvnet(tmp_path_factory):
    """deepchip's own aarch64 build of a small quantized convnet, and its x86 output as reference."""
    import tvm_deepchip
    from qdq_builders import small_convnet

    d = tmp_path_factory.mktemp("qconvnet")
    m = small_convnet()
    shape = [dim.dim_value for dim in m.graph.input[0].type.tensor_type.shape.dim]
    x = np.random.default_rng(0).random(shape).astype("float32")
    np.save(d / "x.npy", x)
    tvm_deepchip.compile(m, "aarch64", tuning_log=None, output=d / "arm.so")
    tvm_deepchip.compile(m, "x86", tuning_log=None, output=d / "x86.so")
    return {"arm": d / "arm.so", "x": x, "ref": remote.run_local(d / "x86.so", x), "dir": d}


@needs_rpc
@pytest.mark.qemu
@pytest.mark.parametrize("which", ["matmul", "qconvnet"])
def test_bundle_runs_in_qemu_root_without_tvm(which, request):
    """The bundle runs under emulation with python3 + numpy only: no tvm package importable."""
    model = request.getfixturevalue("model" if which == "matmul" else "qconvnet")
    root = qemu.provision()
    tag = uuid.uuid4().hex[:8]
    inside = f"/tmp/bundle-{tag}"
    np_only = root / "tmp" / f"np-only-{tag}"  # a sys.path holding numpy and nothing else
    try:
        res = subprocess.run([sys.executable, "-m", "tvm_deepchip", "bundle", str(model["arm"]),
                              "-o", str(root / inside[1:])], capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr
        manifest = json.loads((root / inside[1:] / "manifest.json").read_text())
        assert manifest["arch"] == "aarch64"
        for lib in ("lib/libtvm_runtime.so", "lib/libtvm_ffi.so", "model.so"):
            assert remote.elf_arch(root / inside[1:] / lib) == "aarch64"
        assert manifest["size_bytes"] < 30e6  # runtime only, not the 240 MB compiler
        shutil.copy(model["dir"] / "x.npy", root / inside[1:] / "x.npy")
        np_only.mkdir()
        site = next((root / "usr" / "local" / "lib").glob("python3*/dist-packages"))
        for name in ("numpy", "numpy.libs"):
            (np_only / name).symlink_to(_inside(site / name, root))
        env = ["/usr/bin/env", "-i", f"PYTHONPATH=/tmp/{np_only.name}", "/usr/bin/python3", "-S"]
        no_tvm = subprocess.run(["chroot", str(root), *env, "-c", "import tvm"], capture_output=True, text=True)
        assert no_tvm.returncode != 0 and "No module named 'tvm'" in no_tvm.stderr
        run = subprocess.run(["chroot", str(root), *env, f"{inside}/run.py", "--input", f"{inside}/x.npy",
                              "-o", f"{inside}/y.npy"], capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        info = json.loads(run.stdout.strip().splitlines()[-1])
        assert info["tvm_imported"] is False and info["machine"] == "aarch64"
        np.testing.assert_array_equal(np.load(root / inside[1:] / "y.npy"), model["ref"])
    finally:
        shutil.rmtree(root / inside[1:], ignore_errors=True)
        shutil.rmtree(np_only, ignore_errors=True)


def _inside(path, root):
    """The absolute path a process inside the chroot sees for `path`."""
    return "/" + str(path.relative_to(root))
