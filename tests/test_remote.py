"""Running compiled models over TVM RPC on the QEMU aarch64 device, and its failure modes.

Needs the device: `eval "$(bash .ci/qemu_up.sh)"` (sets DEEPCHIP_RPC, DEEPCHIP_TRACKER,
DEEPCHIP_RPC_KEY). Tests that need no device run always.
"""
from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest

from tvm_deepchip import remote
from tvm_deepchip.errors import DeviceError, InputError

from rpc_models import AARCH64, X86, chain_matmul, export, free_port, free_ports, matmul_relu

RPC = os.environ.get("DEEPCHIP_RPC")
TRACKER = os.environ.get("DEEPCHIP_TRACKER")
KEY = os.environ.get("DEEPCHIP_RPC_KEY", "aarch64")
needs_rpc = pytest.mark.skipif(not RPC, reason="DEEPCHIP_RPC not set: run `eval \"$(bash .ci/qemu_up.sh)\"` first")
needs_tracker = pytest.mark.skipif(not TRACKER, reason="DEEPCHIP_TRACKER not set: run `eval \"$(bash .ci/qemu_up.sh)\"`")


@pytest.fixture(scope="module", params=["int32", "float32"])
def model(request, tmp_path_factory):
    d = tmp_path_factory.mktemp(f"mm_{request.param}")
    mod, x, ref = matmul_relu(request.param)
    return {"arm": export(mod, AARCH64, d / "arm.so"), "x86": export(mod, X86, d / "x86.so"), "x": x, "ref": ref}


def test_elf_arch_and_non_elf(model, tmp_path):
    assert remote.elf_arch(model["arm"]) == "aarch64"
    assert remote.elf_arch(model["x86"]) == "x86_64"
    bad = tmp_path / "model.so"
    bad.write_text("not a library")
    with pytest.raises(InputError, match="not an ELF"):
        remote.elf_arch(bad)


def test_local_run_matches_numpy(model):
    y = remote.run_local(model["x86"], model["x"])
    np.testing.assert_array_equal(y, model["ref"])
    with pytest.raises(InputError, match="aarch64.*x86_64"):
        remote.run_local(model["arm"], model["x"])


def test_no_server_listening_fails_in_seconds():
    port = free_port()
    t0 = time.monotonic()
    with pytest.raises(DeviceError, match=f"127.0.0.1:{port}"):
        remote.connect(rpc=f"127.0.0.1:{port}", timeout=60)
    assert time.monotonic() - t0 < 5


@needs_rpc
@pytest.mark.qemu
def test_remote_equals_numpy_and_x86(model):
    y = remote.run_remote(model["arm"], model["x"], rpc=RPC, timeout=60)
    assert y.dtype == model["ref"].dtype and y.shape == model["ref"].shape
    np.testing.assert_array_equal(y, model["ref"])
    np.testing.assert_array_equal(y, remote.run_local(model["x86"], model["x"]))


@needs_rpc
@pytest.mark.qemu
def test_wrong_arch_names_both(model):
    t0 = time.monotonic()
    with pytest.raises(InputError) as err:
        remote.run_remote(model["x86"], model["x"], rpc=RPC)
    assert "x86_64" in str(err.value) and "aarch64" in str(err.value) and RPC in str(err.value)
    assert time.monotonic() - t0 < 10  # refused before any upload (an upload under QEMU takes longer)


@needs_rpc
@pytest.mark.qemu
def test_bench_remote(model):
    stats = remote.bench_remote(model["arm"], model["x"], rpc=RPC, number=3, repeat=2, timeout=60)
    assert stats["repeat"] == 2 and stats["number"] == 3
    assert 0 < stats["min_ms"] <= stats["median_ms"] <= stats["max_ms"]  # emulation timings: no bound


@needs_rpc
@pytest.mark.qemu
def test_rpc_bench_script_table(model, tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "rpc_bench.py"
    np.save(tmp_path / "x.npy", model["x"])
    rows_file = tmp_path / "rows.json"
    res = subprocess.run([sys.executable, str(script), str(model["arm"]), str(model["x86"]), "--input",
                          str(tmp_path / "x.npy"), "--rpc", RPC, "--number", "2", "--repeat", "2",
                          "--json", str(rows_file)], capture_output=True, text=True, timeout=180)
    assert res.returncode == 1, res.stderr  # the x86 library is refused, the aarch64 one timed
    rows = {r["model"]: r for r in json.loads(rows_file.read_text())}
    assert rows["arm.so"]["median_ms"] > 0 and rows["arm.so"]["arch"] == "aarch64"
    assert "x86_64" in rows["x86.so"]["error"]
    assert "median ms" in res.stdout and "emulation timings" in res.stdout


@needs_tracker
@pytest.mark.qemu
def test_run_through_tracker(model):
    y = remote.run_remote(model["arm"], model["x"], tracker=TRACKER, key=KEY, timeout=60)
    np.testing.assert_array_equal(y, model["ref"])


@needs_tracker
@pytest.mark.qemu
def test_tracker_unknown_key_names_it():
    with pytest.raises(DeviceError, match="'no-such-board'"):
        remote.connect(tracker=TRACKER, key="no-such-board", timeout=5)


@needs_tracker
@pytest.mark.qemu
def test_tracker_no_free_device_times_out_naming_key():
    import tvm.rpc

    host, port = remote.parse_addr(TRACKER)
    summary = tvm.rpc.connect_tracker(host, port).summary()
    n_free = sum(1 for s in summary["server_info"] if s["key"].split(":")[-1] == KEY)
    assert n_free >= 1
    held = [remote.connect(tracker=TRACKER, key=KEY, timeout=30) for _ in range(n_free)]
    try:
        t0 = time.monotonic()
        with pytest.raises(DeviceError, match=f"'{KEY}'"):
            remote.connect(tracker=TRACKER, key=KEY, timeout=4)
        assert 3.5 < time.monotonic() - t0 < 10
    finally:
        del held
    # the devices come back once released (the abandoned request did not keep one)
    deadline = time.monotonic() + 30
    while True:
        try:
            remote.connect(tracker=TRACKER, key=KEY, timeout=5)
            break
        except DeviceError:
            assert time.monotonic() < deadline, "tracker devices did not come back after release"


@needs_rpc
@pytest.mark.qemu
def test_busy_server_times_out_and_frees_the_caller(model):
    """A direct server serves one session at a time: a second client gets a timeout, not a hang."""
    held = remote.connect(rpc=RPC, timeout=60)
    try:
        t0 = time.monotonic()
        with pytest.raises(DeviceError, match=RPC):
            remote.connect(rpc=RPC, timeout=3)
        assert time.monotonic() - t0 < 10
        assert not [t for t in threading.enumerate() if t.name.startswith("deepchip-rpc")]
    finally:
        held.close()
    # once released, the next job gets the server (run_remote releases its session when done)
    for _ in range(2):
        np.testing.assert_array_equal(remote.run_remote(model["arm"], model["x"], rpc=RPC, timeout=30), model["ref"])


def _session_children(pgid: int) -> list[int]:
    from tvm_deepchip import qemu

    return [p for p in qemu.group_members(pgid) if p != pgid]


FAULTS = ("kill", "stop")


@pytest.fixture(scope="module")
def fault_servers(tmp_path_factory):
    """One QEMU RPC server per fault, started together (their start-ups overlap: importing TVM
    under emulation is most of a test's time), and the slow model they run."""
    from tvm_deepchip import qemu

    mod, x = chain_matmul(1024)
    so = export(mod, AARCH64, tmp_path_factory.mktemp("fault") / "slow.so")
    recs = qemu.up(port=free_ports(len(FAULTS)), n=len(FAULTS))
    try:
        yield dict(zip(FAULTS, recs)), so, x
    finally:
        running = [r["pid"] for r in qemu.status()]
        for rec in recs:
            if rec["pid"] in running:  # a test stopped its own; a skipped or failed one may not have
                qemu.stop(rec)


@needs_rpc
@pytest.mark.qemu
@pytest.mark.parametrize("fault", FAULTS)
def test_server_fault_mid_run(fault, fault_servers):
    """A server killed (or frozen) in the middle of a run: DeviceError within the timeout, nothing left."""
    from tvm_deepchip import qemu

    servers, so, x = fault_servers
    rec = servers[fault]
    port = rec["port"]
    timeout = 12.0
    box = {}

    def client():
        t0 = time.monotonic()
        try:
            box["value"] = remote.run_remote(so, x, rpc=f"127.0.0.1:{port}", timeout=timeout)
        except Exception as err:  # checked below
            box["error"] = err
        box["elapsed"] = time.monotonic() - t0

    th = threading.Thread(target=client, daemon=True)
    try:
        th.start()
        # wait until the server forked the session that runs the model, then hit it mid-run
        deadline = time.monotonic() + 30
        while not _session_children(rec["pid"]):
            assert time.monotonic() < deadline, "the RPC session never started"
            time.sleep(0.2)
        time.sleep(2.0)
        assert th.is_alive(), "the model finished before the fault: make it slower"
        os.killpg(rec["pid"], signal.SIGKILL if fault == "kill" else signal.SIGSTOP)
        th.join(timeout + 10)
        assert not th.is_alive(), "run_remote hung past its timeout"
        assert isinstance(box.get("error"), DeviceError), box
        assert f"127.0.0.1:{port}" in str(box["error"])
        assert box["elapsed"] < timeout + 3
        assert not [t for t in threading.enumerate() if t.name.startswith("deepchip-rpc")]  # no call left blocked
    finally:
        qemu.stop(rec)
    assert qemu.group_members(rec["pid"]) == []  # nothing of that server's process group is left
    assert rec["pid"] not in [r["pid"] for r in qemu.status()]


@needs_rpc
@pytest.mark.qemu
@pytest.mark.parametrize("fmt", ["sparse", "packed", "int8"])
def test_compiled_quantized_convnet_matches_x86_bit_for_bit(fmt, tmp_path):
    """deepchip's own compile --target aarch64, run over RPC: identical to the x86 build."""
    import tvm_deepchip
    from qdq_builders import small_convnet

    m = small_convnet()
    shape = [d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim]
    x = np.random.default_rng(0).random(shape).astype("float32")
    tvm_deepchip.compile(m, "aarch64", tuning_log=None, default_ternary=fmt, output=tmp_path / "arm.so")
    tvm_deepchip.compile(m, "x86", tuning_log=None, default_ternary=fmt, output=tmp_path / "x86.so")
    assert remote.elf_arch(tmp_path / "arm.so") == "aarch64"
    y_arm = remote.run_remote(tmp_path / "arm.so", x, rpc=RPC, timeout=120)
    y_x86 = remote.run_local(tmp_path / "x86.so", x)
    assert y_arm.shape == y_x86.shape and np.isfinite(y_arm).all()
    np.testing.assert_array_equal(y_arm, y_x86)


def test_qemu_serves_only_its_live_recorded_servers(monkeypatch, tmp_path):
    import json
    import subprocess

    from tvm_deepchip import qemu

    dead = subprocess.Popen(["true"])
    dead.wait()
    monkeypatch.setattr(qemu, "PIDS", tmp_path / "pids.json")
    (tmp_path / "pids.json").write_text(json.dumps({"mounts": [], "procs": [
        {"role": "server", "pid": os.getpid(), "port": 9990, "key": None, "tracker": None},
        {"role": "tracker", "pid": os.getpid(), "port": 9991},
        {"role": "server", "pid": dead.pid, "port": 9992, "key": None, "tracker": None}]}))
    assert qemu.serves("127.0.0.1:9990") and qemu.serves("localhost:9990")
    for addr in ("127.0.0.1:9991", "127.0.0.1:9992", "127.0.0.1:9993", "10.0.0.7:9990", None, "garbage"):
        assert not qemu.serves(addr), addr


@pytest.fixture(scope="module")
def host_server():
    """An x86 TVM RPC server on this machine: an RPC device that is not the QEMU device."""
    from rpc_models import HostRPC

    fleet = HostRPC()
    try:
        yield fleet.server()
    finally:
        fleet.close()


def test_cli_bench_emulation_note_only_on_the_qemu_device(model, host_server, tmp_path, capsys, monkeypatch):
    import json

    from tvm_deepchip import qemu
    from tvm_deepchip.cli import main

    addr, pid = host_server
    np.save(tmp_path / "x.npy", model["x"])
    argv = ["bench", str(model["x86"]), "--input", str(tmp_path / "x.npy"), "--rpc", addr, "--arch", "x86_64",
            "--number", "1", "--repeat", "1"]
    monkeypatch.setattr(qemu, "PIDS", tmp_path / "pids.json")  # no QEMU device recorded
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "median" in out and addr in out and "emulation" not in out
    (tmp_path / "pids.json").write_text(json.dumps({"mounts": [], "procs": [  # as if `qemu up` had started it
        {"role": "server", "pid": pid, "port": int(addr.rsplit(":", 1)[1]), "key": None, "tracker": None}]}))
    assert main(argv) == 0
    assert f"{addr} is the QEMU device: these are emulation timings" in capsys.readouterr().out


@needs_rpc
@pytest.mark.qemu
def test_cli_bench_on_the_qemu_device_notes_emulation(model, tmp_path, capsys):
    from tvm_deepchip.cli import main

    np.save(tmp_path / "x.npy", model["x"])
    assert main(["bench", str(model["arm"]), "--input", str(tmp_path / "x.npy"), "--rpc", RPC,
                 "--number", "1", "--repeat", "1"]) == 0
    assert "emulation timings" in capsys.readouterr().out
