"""MetaSchedule tuning: a few trials write a valid log that compile applies; broken or foreign
logs are reported with their path and ignored; failing candidates are skipped with a reason."""
from __future__ import annotations

import json
import logging
import shutil
import time

import numpy as np
import pytest
import tvm
from tvm import relax

import tvm_deepchip
from tvm_deepchip import oracle, tuning
from tvm_deepchip.errors import DeviceError
from tvm_deepchip.tuning_db import RECORDS, WORKLOADS
from qdq_builders import small_convnet


def _run(compiled, x):
    return relax.VirtualMachine(compiled.executable, tvm.cpu())["main"](tvm.runtime.tensor(x)).numpy()


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    model = small_convnet(seed=5)
    work = tmp_path_factory.mktemp("tune")
    tuning.tune(model, "x86", work_dir=work, trials=6, choose_formats=True)
    return model, work


def test_tuning_writes_a_log_that_compile_uses(tuned):
    model, work = tuned
    for name in (WORKLOADS, RECORDS, "formats.json"):
        assert (work / name).is_file(), name
    records = [json.loads(line) for line in (work / RECORDS).read_text().splitlines() if line.strip()]
    assert records, "no tuning record written"
    compiled = tvm_deepchip.compile(model, "x86", tuning_log=work)
    report = compiled.report
    assert report.tuning_log == str(work)
    tuned_ours = [n for n, how in report.schedules.items() if how == "tuned" and n.startswith("deepchip_")]
    assert tuned_ours, report.schedules
    assert "tuned" in report.format()
    x = np.random.default_rng(0).random((1, 3, 12, 12), dtype=np.float32)
    np.testing.assert_allclose(_run(compiled, x), oracle.run(model, x), rtol=1e-5, atol=1e-5)
    # the format choice is recorded and reproduced
    chosen = json.loads((work / "formats.json").read_text())
    formats = {row["layer"]: row["format"] for row in chosen.values()}
    rows = {r["layer"]: r for r in report.layers}
    assert all(rows[name]["format"] == fmt for name, fmt in formats.items())


@pytest.mark.parametrize("damage", ["garbage", "truncated", "foreign"])
def test_broken_or_foreign_log_is_reported_and_ignored(tuned, tmp_path, caplog, damage):
    model, work = tuned
    bad = tmp_path / "log"
    shutil.copytree(work, bad)
    rec = bad / RECORDS
    if damage == "garbage":
        rec.write_text("this is not json\n")
    elif damage == "truncated":
        text = rec.read_text()
        rec.write_text(text[: len(text) // 2].rstrip("]\n"))  # cut inside a record
    else:  # a well-formed log of a different model: nothing matches, defaults apply
        other = small_convnet(seed=9, act="relu")
        tuning.tune(other, "x86", work_dir=bad, trials=1, choose_formats=False)
    with caplog.at_level(logging.WARNING):
        compiled = tvm_deepchip.compile(model, "x86", tuning_log=bad)
    x = np.random.default_rng(1).random((1, 3, 12, 12), dtype=np.float32)
    np.testing.assert_allclose(_run(compiled, x), oracle.run(model, x), rtol=1e-5, atol=1e-5)
    if damage != "foreign":
        assert str(bad) in caplog.text
        assert compiled.report.tuning_log.endswith("(ignored)")
        assert all(how == "default" for how in compiled.report.schedules.values())


def test_failing_candidates_are_skipped_with_a_reason(tmp_path, caplog):
    """Every measurement fails (a runner whose device is gone): each candidate is logged with
    its reason and skipped, and tuning still finishes and writes no record."""
    from tvm.s_tir import meta_schedule as ms

    def _broken_device(device, args_info, alloc_repeat):  # local: pickled by value to the worker
        raise RuntimeError("device lost (injected by the test)")

    model = small_convnet(seed=6)
    runner = ms.runner.LocalRunner(timeout_sec=30, f_alloc_argument=_broken_device)
    with caplog.at_level(logging.WARNING, logger="tvm_deepchip.tuning"):
        with pytest.raises(DeviceError, match=r"none of \d+ candidates could be measured"):
            tuning.tune(model, "x86", work_dir=tmp_path, trials=2, choose_formats=False, runner=runner)
    assert "candidate skipped" in caplog.text and "device lost" in caplog.text


def test_cost_model_is_trained_only_where_it_can_predict():
    """MetaSchedule's XGBoost model scores at random until it holds XGB_WARMUP measurements: a
    budget that never gets there tunes with the random model, untrained."""
    from tvm.s_tir import meta_schedule as ms

    assert tuning.XGB_WARMUP == ms.cost_model.XGBModel().num_warmup_samples
    assert tuning.cost_model(tuning.XGB_WARMUP) == "random" and tuning.cost_model(tuning.XGB_WARMUP + 1) == "xgb"


@pytest.fixture
def qmodel_path(tmp_path):
    import onnx

    path = tmp_path / "q.onnx"
    onnx.save(small_convnet(seed=6), str(path))
    return path


@pytest.mark.parametrize("flag", ["--trials", "--trials-per-task", "--timeout"])
def test_cli_tune_refuses_zero_trials(qmodel_path, tmp_path, capsys, flag):
    from tvm_deepchip.cli import main

    work = tmp_path / "log"
    assert main(["tune", str(qmodel_path), "--work-dir", str(work), flag, "0"]) == 2
    assert f"{flag} 0" in capsys.readouterr().err
    assert not work.exists()


def test_cli_tune_dead_tracker_fails_in_seconds(qmodel_path, tmp_path, capsys):
    """Nothing listens at the tracker: one message naming it, exit 2, within the probe's limit
    (MetaSchedule's runner retried for minutes and exited 0)."""
    from rpc_models import free_port
    from tvm_deepchip.cli import main

    port = free_port()
    t0 = time.monotonic()
    rc = main(["tune", str(qmodel_path), "--work-dir", str(tmp_path / "log"), "--tracker", f"127.0.0.1:{port}",
               "--key", "x", "--trials", "2", "--no-format-choice"])
    assert rc == 2 and time.monotonic() - t0 < tuning.PROBE_BUDGET + 5
    err = capsys.readouterr().err
    assert f"127.0.0.1:{port}" in err and "Traceback" not in err and err.count("error:") == 1
    assert not (tmp_path / "log").exists()


@pytest.fixture(scope="module")
def host_fleet():
    """A tracker with one x86 RPC server under key 'x86-test', both on this machine."""
    from rpc_models import HostRPC

    fleet = HostRPC()
    try:
        tracker = fleet.tracker()
        fleet.server(tracker, "x86-test")
        yield tracker
    finally:
        fleet.close()


def test_probe_tracker_without_that_key(host_fleet, qmodel_path, tmp_path, capsys):
    from tvm_deepchip.cli import main

    rc = main(["tune", str(qmodel_path), "--work-dir", str(tmp_path / "log"), "--tracker", host_fleet,
               "--key", "no-such-board", "--trials", "2", "--no-format-choice"])
    err = capsys.readouterr().err
    assert rc == 2 and host_fleet in err and "'no-such-board'" in err and "x86-test" in err


def test_probe_tracker_with_no_free_server(host_fleet):
    from tvm_deepchip import remote

    tuning.probe_device(host_fleet, "x86-test", budget=10)  # a free server: passes
    held = remote.connect(tracker=host_fleet, key="x86-test", timeout=30)
    try:
        t0 = time.monotonic()
        with pytest.raises(DeviceError, match=f"'x86-test'.*{host_fleet}"):
            tuning.probe_device(host_fleet, "x86-test", budget=3)
        assert time.monotonic() - t0 < 3 + 5
    finally:
        held.close()


def test_search_space_is_built_under_the_task_target():
    """The tuner's sampled schedules see the target (vector width, VNNI), like compile's defaults:
    built for the x86-avx512-vnni class's target, on any host (nothing runs)."""
    import primitive_cases as pc
    from tvm.s_tir import meta_schedule as ms

    from tvm_deepchip import primitives
    from tvm_deepchip.schedules import search_space

    from tvm_deepchip import cpu_intrinsics, isa

    cpu_intrinsics.register()  # as tuning does: the TuneContext would import TVM's GPU intrinsics too
    tgt = tvm.target.Target(isa.CLASSES["x86-avx512-vnni"].target)
    rng = np.random.default_rng(0)
    layer = pc.make_layer(rng, "conv2d", "int8", (32, 8, 3, 3), pad=1)
    lowered = primitives.lower_layer(layer, (1, 8, 12, 12), "int8")
    func = primitives.prim_func(lowered)
    ctx = ms.TuneContext(mod=tvm.IRModule({"main": func}), target=tgt, space_generator=search_space(tgt), task_name="t")
    (space,) = ctx.generate_design_space()
    assert "vpdpbusd" in space.mod.script()


def test_committed_log_opens_in_a_fresh_process():
    """Records that tensorize with our VNNI intrinsic name it: a new process must register it
    before reading the log (open_database does), or the whole log would be dropped."""
    import subprocess
    import sys

    from tvm_deepchip import targets, tuning_db

    path = tuning_db.resolve("auto", targets.resolve("x86-avx512-vnni"))
    assert path is not None and path.name == "x86-znver4"
    code = ("import sys; from pathlib import Path; from tvm_deepchip import isa, tuning_db; "
            f"db = tuning_db.open_database(Path({str(path)!r}), isa.get('x86-avx512-vnni')); "
            "sys.exit(0 if db is not None and len(db) else 1)")
    assert subprocess.run([sys.executable, "-c", code], timeout=300).returncode == 0


def test_cpu_intrinsics_register_without_the_gpu_ones():
    """cpu_intrinsics.register: after it, the import MetaSchedule's TuneContext does finds the
    package (no __init__ run: CUDA's intrinsics, 97 s on a Zen 1, not parsed) and TVM's x86 and
    ARM intrinsics are registered. A fresh process: this one may hold the whole package."""
    import subprocess
    import sys

    code = (
        "import sys, time\n"
        "from tvm_deepchip import cpu_intrinsics\n"
        "cpu_intrinsics.register()\n"
        "t = time.monotonic()\n"
        "import tvm.s_tir.tensor_intrin\n"
        "assert time.monotonic() - t < 1.0\n"
        "from tvm.s_tir import TensorIntrin\n"
        "TensorIntrin.get('dot_16x4_vnni')\n"
        "import tvm.s_tir.tensor_intrin.arm_cpu as arm\n"
        "TensorIntrin.get(arm.ARM_DOT_4x4_i8_SDOT_INTRIN)\n"
        "assert 'tvm.s_tir.tensor_intrin.cuda' not in sys.modules\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


@pytest.mark.parametrize("op, fmt, kind, wshape, in_shape, task", [
    ("dense", "packed", "ternary", (64, 512), (1, 512), False),  # bit_dot's te.extern: Broadcasts
    ("conv2d", "packed", "ternary", (64, 32, 3, 3), (1, 32, 3, 3), False),
    ("conv2d", "int8", "int8", (16, 3, 3, 3), (1, 3, 32, 32), True),
    ("dense", "dot", "ternary", (512, 512), (1, 512), True),
])
def test_kernels_metaschedule_cannot_estimate_are_not_tasks(op, fmt, kind, wshape, in_shape, task):
    """MetaSchedule's FLOP estimate raises on a hand-built body's vector expressions; such a kernel
    keeps its own schedule instead of stopping the tuning (choose_formats' timings decide whether a
    model has one: the packed format's)."""
    import primitive_cases as pc
    from tvm_deepchip import isa, primitives

    layer = pc.make_layer(np.random.default_rng(0), op, kind, wshape)
    lowered = primitives.lower_layer(layer, in_shape, fmt, isa.get("x86-avx2"))
    assert tuning._estimable(tvm.IRModule({"main": primitives.prim_func(lowered)})) == task
