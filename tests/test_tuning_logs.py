"""Which tuning log fits which build: logs are matched by the ISA class of the targets stored in
their records (isa.classify); a log of another class is reported and ignored, a log mixing
classes gives the build only its own class's records, `auto` finds the committed log by class."""
from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import tvm_deepchip
from tvm_deepchip import isa, targets, tuning, tuning_db
from tvm_deepchip.errors import InputError
from tvm_deepchip.tuning_db import RECORDS, WORKLOADS
from qdq_builders import small_convnet

LOGS = Path(tuning_db.logs_root())
ZNVER4 = LOGS / "x86-znver4"  # committed, tuned on an AVX-512 VNNI CPU
ARM = LOGS / "aarch64"  # committed, tuned on the aarch64 dotprod device
HASWELL = LOGS / "x86-haswell"  # committed, the AVX2 class's (tuned on an AVX-512 CPU building for AVX2)


def _fake_log(d: Path, *target_dicts) -> Path:
    """A log directory whose records carry these targets (traces empty: for the matcher only)."""
    d.mkdir(parents=True)
    (d / WORKLOADS).write_text("")
    (d / RECORDS).write_text("".join(json.dumps([0, [[[], []], [1e-5], t, []]]) + "\n" for t in target_dicts))
    return d


def _x86(mcpu):
    return {"kind": "llvm", "mtriple": "x86_64-linux-gnu", "mcpu": mcpu, "keys": ["cpu"]}


ARM_DOT = isa.get("aarch64-dotprod").target


def test_committed_logs_have_one_class_each():
    assert set(tuning_db.record_classes(ZNVER4 / RECORDS)) == {"x86-avx512-vnni"}
    assert set(tuning_db.record_classes(ARM / RECORDS)) == {"aarch64-dotprod"}
    assert set(tuning_db.record_classes(HASWELL / RECORDS)) == {"x86-avx2"}


@pytest.mark.parametrize("log_dir, cls", [(ZNVER4, "x86-avx512-vnni"), (ARM, "aarch64-dotprod"), (HASWELL, "x86-avx2")])
def test_committed_log_opens_whole_for_its_class(caplog, log_dir, cls):
    """Every record of a committed log parses against the tensor intrinsics this code registers:
    a record naming an intrinsic that is gone, or one whose description no longer matches the
    record's workload, makes MetaSchedule reject the whole log, and the builds would silently run
    every layer on its default schedule."""
    rows = [line for line in (log_dir / RECORDS).read_text().splitlines() if line.strip()]
    with caplog.at_level(logging.WARNING, logger="tvm_deepchip.tuning_db"):
        db = tuning_db.open_database(log_dir, isa.get(cls))
    assert db is not None, caplog.text
    assert len(db) == len(rows) and not caplog.text


@pytest.mark.parametrize("cls, expect", [("x86-avx512-vnni", ZNVER4), ("aarch64-dotprod", ARM),
                                         ("x86-avx2", HASWELL), ("x86-avx512", None), ("aarch64-neon", None)])
def test_auto_finds_the_committed_log_of_the_class(cls, expect):
    assert tuning_db.committed_log(isa.get(cls)) == expect


def test_auto_matches_any_cpu_of_the_class():
    """Cascade Lake has AVX-512 VNNI like znver4: the znver4 log applies; AVX2 CPUs (haswell, znver3)
    get the AVX2 class's log; Skylake-SP (AVX-512 without VNNI) neither."""
    for mcpu, expect in (("cascadelake", ZNVER4), ("znver4", ZNVER4), ("haswell", HASWELL), ("znver3", HASWELL),
                         ("skylake-avx512", None)):
        target = targets.resolve("x86", target_json=_x86(mcpu))
        assert tuning_db.resolve("auto", target) == expect, mcpu
    assert tuning_db.resolve("auto", targets.resolve("aarch64")) == ARM
    assert tuning_db.resolve("auto", targets.resolve("aarch64-neon")) is None


def test_auto_prefers_the_exact_directory_and_skips_mixed_logs(tmp_path):
    vnni = isa.get("x86-avx512-vnni")
    _fake_log(tmp_path / "x86-a-mixed", _x86("znver4"), _x86("haswell"))
    assert tuning_db.committed_log(vnni, tmp_path) is None  # a mixed log is no class's log
    _fake_log(tmp_path / "x86-b", _x86("cascadelake"))
    _fake_log(tmp_path / "x86-znver5", _x86("znver5"))
    assert tuning_db.committed_log(vnni, tmp_path) == tmp_path / "x86-b"
    assert tuning_db.committed_log(vnni, tmp_path, prefer="x86-znver5") == tmp_path / "x86-znver5"
    _fake_log(tmp_path / "x86-avx512-vnni", _x86("znver4"))  # issue #11's naming by class
    assert tuning_db.committed_log(vnni, tmp_path) == tmp_path / "x86-avx512-vnni"
    assert tuning_db.committed_log(isa.get("aarch64-dotprod"), tmp_path) is None


def test_record_of_a_non_cpu_target_is_unclassified(tmp_path):
    d = _fake_log(tmp_path / "log", {"kind": "cuda"}, _x86("znver4"))
    assert tuning_db.record_classes(d / RECORDS) == [None, "x86-avx512-vnni"]


@pytest.mark.parametrize("log_dir, build", [(ZNVER4, "x86-avx2"), (ARM, "x86-avx2"), (ZNVER4, "aarch64-dotprod"),
                                            (ARM, "aarch64-neon")])
def test_foreign_log_is_not_opened(caplog, log_dir, build):
    with caplog.at_level(logging.WARNING, logger="tvm_deepchip.tuning_db"):
        assert tuning_db.open_database(log_dir, isa.get(build)) is None
    (theirs,) = set(tuning_db.record_classes(log_dir / RECORDS))
    assert str(log_dir) in caplog.text and theirs in caplog.text and build in caplog.text


def test_mixed_log_gives_only_the_build_class_records(tmp_path, caplog):
    mixed = tmp_path / "mixed"
    shutil.copytree(ARM, mixed)
    rows = [json.loads(line) for line in (mixed / RECORDS).read_text().splitlines() if line.strip()]
    for row in rows[::2]:  # every other record claims to come from an x86 VNNI machine
        row[1][2] = _x86("znver4")
    (mixed / RECORDS).write_text("".join(json.dumps(r) + "\n" for r in rows))
    with caplog.at_level(logging.WARNING, logger="tvm_deepchip.tuning_db"):
        db = tuning_db.open_database(mixed, isa.get("aarch64-dotprod"))
    assert db is not None
    kept = db.get_all_tuning_records()
    assert len(kept) == len(rows[1::2])
    assert {isa.classify(r.target).name for r in kept} == {"aarch64-dotprod"}
    assert "mixes" in caplog.text and "x86-avx512-vnni" in caplog.text and str(mixed) in caplog.text
    assert tuning_db.open_database(mixed, isa.get("x86-avx2")) is None  # neither class


def test_tune_refuses_to_mix_classes_in_one_log(tmp_path):
    work = tmp_path / "log"
    shutil.copytree(ARM, work)
    before = (work / RECORDS).read_text()
    with pytest.raises(InputError, match=rf"{work}.*aarch64-dotprod.*x86-avx2"):
        tuning.tune(small_convnet(), "x86-avx2", work_dir=work, trials=1, choose_formats=False)
    assert (work / RECORDS).read_text() == before


def _quantized(tmp_path) -> Path:
    import onnx

    path = tmp_path / "q.onnx"
    onnx.save(small_convnet(seed=3), str(path))
    return path


def test_cli_compile_ignores_a_log_of_another_class(tmp_path):
    """The committed AVX-512 VNNI log on an AVX2 build (LLVM aborted on its splits): reported with
    its path and both classes, ignored; the build succeeds with our default schedules."""
    model, out = _quantized(tmp_path), tmp_path / "m.so"
    res = subprocess.run([sys.executable, "-m", "tvm_deepchip", "compile", str(model), "-o", str(out),
                          "--target", "x86-avx2", "--tuning-log", str(ZNVER4), "--report", str(tmp_path / "r.json")],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    warning = next(line for line in res.stderr.splitlines() if str(ZNVER4) in line)
    assert "x86-avx512-vnni" in warning and "x86-avx2" in warning and "ignored" in warning
    assert out.is_file() and sorted(p.name for p in tmp_path.iterdir()) == ["m.so", "q.onnx", "r.json"]
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["tuning_log"] == f"{ZNVER4} (ignored)"
    assert report["schedules"] and set(report["schedules"].values()) == {"default"}
    assert report["target"] == "x86-avx2 (mcpu haswell)"
    assert "target: x86-avx2 (mcpu haswell)" in res.stdout and "tuned" not in res.stdout


@pytest.mark.parametrize("log_dir, target", [(ARM, "x86-avx2"), (ZNVER4, "aarch64")])
def test_compile_ignores_a_log_of_another_architecture(caplog, log_dir, target):
    with caplog.at_level(logging.WARNING, logger="tvm_deepchip.tuning_db"):
        compiled = tvm_deepchip.compile(small_convnet(seed=3), target, tuning_log=log_dir)
    report = compiled.report
    assert str(log_dir) in caplog.text and isa.classify(compiled.preset.target).name in caplog.text
    assert report.tuning_log == f"{log_dir} (ignored)"
    assert report.schedules and set(report.schedules.values()) == {"default"}


def test_foreign_log_format_choices_are_not_used(tmp_path):
    """formats.json next to a foreign log was measured on another CPU: ignored with the log
    (next to a log with no records of another class it applies)."""
    from tvm_deepchip.compiler import layer_key, lower

    model = small_convnet(seed=3)
    plan = lower(model, targets.resolve("x86-avx2")).plan
    choices = {layer_key(layer): {"layer": layer.name, "format": "packed"}
               for layer, _shape in plan.lowered_layers() if layer.weight_kind == "ternary"}
    assert choices
    foreign, empty = _fake_log(tmp_path / "foreign", _x86("znver4")), _fake_log(tmp_path / "empty")
    for d in (foreign, empty):
        (d / tuning_db.FORMATS).write_text(json.dumps(choices))

    def formats(log_dir):
        report = tvm_deepchip.compile(model, "x86-avx2", tuning_log=log_dir).report
        return {r["layer"]: r.get("format") for r in report.layers if r["layer"] in
                {c["layer"] for c in choices.values()}}

    assert set(formats(empty).values()) == {"packed"}
    assert "packed" not in set(formats(foreign).values())
