"""Bad input to the `deepchip` commands: one clear message, exit code 2, nothing written, and the
check made before the expensive work (import, quantization, compilation, execution).

The compiled model is a real build of the hand-built QDQ convnet (tests/qdq_builders.py) through
`deepchip compile`; everything runs in-process through `tvm_deepchip.cli.main`.
"""
from __future__ import annotations

import _ctypes
import logging
import re
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

from tvm_deepchip import data, models, onnx_import, sweep
from tvm_deepchip.cli import main
from tvm_deepchip.passes.layer_check import ternary_scales
from qdq_builders import small_convnet

D = Path(data.__file__).parent
FP32, CALIB, TEST = D / "digits_fp32.onnx", D / "digits_calib.npz", D / "digits_test.npz"
LAYERS = ["conv_first", "conv_t1", "conv_t2", "fc_t", "fc_last"]  # graph order
BATCH = 2  # the model says 1; the library is compiled for 2 with --input-shape (a warned override)


def fails(capsys, argv, *patterns) -> str:
    """main(argv) exits 2 with one `deepchip CMD: error:` line matching every pattern."""
    rc = main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("deepchip ")]
    assert rc == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    for p in patterns:
        assert re.search(p, lines[0]), (p, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli_inputs")
    onnx.save(small_convnet(seed=2), str(d / "q.onnx"))
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("tvm_deepchip.onnx_import").addHandler(handler)
    try:
        rc = main(["compile", str(d / "q.onnx"), "-o", str(d / "q.so"), "--tuning-log", "none",
                   "--input-shape", f"input:{BATCH},3,12,12"])
    finally:
        logging.getLogger("tvm_deepchip.onnx_import").removeHandler(handler)
    assert rc == 0
    rng = np.random.default_rng(0)
    np.save(d / "x.npy", rng.random((BATCH, 3, 12, 12), dtype=np.float32))
    return {"dir": d, "onnx": d / "q.onnx", "so": d / "q.so", "x": d / "x.npy",
            "warnings": [r.getMessage() for r in records if r.levelno == logging.WARNING]}


def test_static_dimension_override_is_warned(built):
    assert any("changes static dimension(s) [0]" in w and "[1, 3, 12, 12]" in w for w in built["warnings"]), built["warnings"]


def test_good_input_runs(built, capsys, tmp_path):
    out = tmp_path / "y.npy"
    assert main(["run", str(built["so"]), "--input", str(built["x"]), "-o", str(out)]) == 0
    assert np.load(out).shape == (BATCH, 10)


@pytest.mark.parametrize("array, patterns", [
    (np.zeros((BATCH, 3, 12), np.float32), [r"shape \[2, 3, 12\] float32", r"expects 'input' \[2, 3, 12, 12\] float32"]),
    (np.zeros((1, 3, 12, 12), np.float32), [r"shape \[1, 3, 12, 12\]", r"expects 'input' \[2, 3, 12, 12\]"]),
    (np.zeros((BATCH, 3, 12, 11), np.float32), [r"shape \[2, 3, 12, 11\]"]),
    (np.zeros((BATCH, 3, 12, 12), np.float64), [r"dtype float64", r"float32", r"astype"]),
])
@pytest.mark.parametrize("command", ["run", "bench"])
def test_run_rejects_wrong_input(built, capsys, tmp_path, command, array, patterns):
    x = tmp_path / "bad.npy"
    np.save(x, array)
    out = tmp_path / "y.npy"
    fails(capsys, [command, built["so"], "--input", x] + (["-o", out] if command == "run" else []), "q.so", *patterns)
    assert not out.exists()


def test_run_rejects_two_inputs_and_npz(built, capsys, tmp_path):
    fails(capsys, ["run", built["so"], "--input", built["x"], "--input", built["x"]],
          r"q.so takes 1 input\(s\) \('input' \[2, 3, 12, 12\] float32\), but 2 --input were given")
    npz = tmp_path / "x.npz"
    np.savez(npz, x=np.load(built["x"]))
    fails(capsys, ["run", built["so"], "--input", npz], r"x.npz: is an .npz archive", r"own .npy")


def _tir_only_library(path: Path) -> Path:
    import tvm
    from tvm import te

    a = te.placeholder((4,), name="a")
    b = te.compute((4,), lambda i: a[i] + 1, name="b")
    tvm.tirx.build(tvm.IRModule({"add1": te.create_prim_func([a, b])}), target={"kind": "llvm"}).export_library(str(path))
    return path


@pytest.mark.parametrize("which", ["c_library", "tir_only"])
def test_non_vm_library_is_refused(capsys, tmp_path, which):
    """A shared library that is not a Relax VM executable: run, bench and bundle refuse it."""
    so = tmp_path / "model.so"
    if which == "c_library":
        shutil.copy(_ctypes.__file__, so)  # any C extension: an x86-64 ELF shared object like libm
    else:
        _tir_only_library(so)
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((1, 3), np.float32))
    for argv in (["run", so, "--input", x], ["bench", so, "--input", x]):
        fails(capsys, argv, r"model.so is not a TVM Relax VM library", "deepchip compile")
    out = tmp_path / "bundle"
    fails(capsys, ["bundle", so, "-o", out, "--arch", "x86_64"], r"not a TVM Relax VM library")
    assert not out.exists()


@pytest.mark.parametrize("option", ["--repeat", "--number"])
def test_bench_needs_at_least_one_run(built, capsys, option):
    line = fails(capsys, ["bench", built["so"], "--input", built["x"], option, "0"], rf"{option} 0: .*>= 1")
    assert "inf" not in line


@pytest.fixture
def no_lowering(monkeypatch):
    """The checks must come before the model is imported: importing it fails the test."""
    def boom(*a, **k):
        raise AssertionError("the model was imported before the options were checked")

    monkeypatch.setattr(onnx_import, "to_relax", boom)


@pytest.mark.parametrize("options, patterns", [
    (["--input-shape", "input:1,3,16"], [r"input:1,3,16 has 3 dimensions; input 'input' has 4 \(1,3,12,12\)"]),
    (["--input-shape", "input:0,3,12,12"], [r"input:0,3,12,12: dimensions must be >= 1"]),
    (["--input-shape", "input:-1,3,12,12"], [r"input:-1,3,12,12: dimensions must be >= 1"]),
    (["--input-shape", "image:1,3,12,12"], [r"names \['image'\]: the model's inputs are \['input'\]"]),
    (["--format", "conv_t1=bogus"], [r"unknown format 'bogus'", "sparse, delta, packed, dot, int8, bits, float"]),
    (["--format", "nosuch=packed"], [r"\['nosuch'\]", re.escape(str(LAYERS))]),
])
def test_compile_rejects_bad_options(built, capsys, tmp_path, no_lowering, options, patterns):
    out = tmp_path / "m.so"
    fails(capsys, ["compile", built["onnx"], "-o", out, "--tuning-log", "none"] + options, *patterns)
    assert not out.exists()


def test_compile_refuses_the_dot_form_on_a_conv_that_does_not_cover_its_input(built, capsys, tmp_path):
    out = tmp_path / "m.so"
    fails(capsys, ["compile", built["onnx"], "-o", out, "--tuning-log", "none", "--format", "conv_t1=dot"],
          r"layer 'conv_t1': format 'dot' runs a conv only where its kernel covers its whole unpadded input")
    assert not out.exists()


def test_quantize_sparsity_zero_is_refused_with_the_smallest_valid_value(capsys, tmp_path):
    src, out = tmp_path / "f.onnx", tmp_path / "q.onnx"
    onnx.save(models.svhn_convnet(in_hw=8, in_ch=1), str(src))
    calib = tmp_path / "calib.npz"
    np.savez(calib, x=np.random.default_rng(0).random((4, 1, 8, 8), dtype=np.float32))
    line = fails(capsys, ["quantize", src, "-o", out, "--calib", calib, "--sparsity", "0"],
                 r"sparsity 0 leaves no zero weight in layer\(s\) \['conv2'", r"binary", r"the smallest sparsity")
    assert not out.exists()
    smallest = float(line.rsplit(" ", 1)[1])
    assert 0 < smallest < 0.01
    # the value it names gives every ternary layer a zero: weights the compiler lowers as ternary
    assert main(["quantize", str(src), "-o", str(out), "--calib", str(calib), "--sparsity", str(smallest)]) == 0
    q = onnx.load(str(out))
    ternary = [onnx.numpy_helper.to_array(i) for i in q.graph.initializer
               if i.data_type == onnx.TensorProto.FLOAT and len(i.dims) == 4 and i.dims[1] > 1]
    assert len(ternary) == 6 and all(ternary_scales(w) is not None for w in ternary)


def test_constant_calibration_set_is_warned(caplog, tmp_path):
    zeros = tmp_path / "zeros.npz"
    np.savez(zeros, x=np.zeros((4, 1, 8, 8), np.float32))
    src = tmp_path / "f.onnx"
    onnx.save(models.svhn_convnet(in_hw=8, in_ch=1), str(src))
    with caplog.at_level(logging.WARNING, logger="tvm_deepchip.calibrate"):
        assert main(["quantize", str(src), "-o", str(tmp_path / "q.onnx"), "--calib", str(zeros)]) == 0
    assert any("zeros.npz" in r.getMessage() and "is constant" in r.getMessage() for r in caplog.records)


@pytest.fixture
def no_sweep_work(monkeypatch):
    """The checks must come before the FP32 baseline, any quantization or compilation."""
    def boom(*a, **k):
        raise AssertionError("sweep work started before its input was checked")

    monkeypatch.setattr(sweep, "fp32_row", boom)
    monkeypatch.setattr(sweep, "ptq_rows", boom)


@pytest.mark.parametrize("make, patterns", [
    (lambda x, y: (np.zeros((len(x), 1, 9, 9), np.float32), y), [r"images of shape \[20, 1, 9, 9\]", r"\[N, 1, 8, 8\]"]),
    (lambda x, y: (x, y.astype(np.float32) + 0.5), [r"labels have dtype float32", "integer class indices"]),
    (lambda x, y: (x, np.r_[y[:-1], 10]), [r"label 10 is not a class index of the model's 10 outputs \(expected 0..9\)"]),
    (lambda x, y: (x, np.r_[y[:-1], -1]), [r"label -1 is not a class index"]),
])
def test_sweep_checks_test_set_first(capsys, tmp_path, no_sweep_work, make, patterns):
    f = np.load(TEST)
    x, y = make(f["x"][:20], f["y"][:20])
    test = tmp_path / "test.npz"
    np.savez(test, x=x, y=y)
    out = tmp_path / "out"
    fails(capsys, ["sweep", FP32, "--calib", CALIB, "--test", test, "--sparsities", "0.9", "--out", out],
          "test.npz", *patterns)
    assert not out.exists()


@pytest.mark.parametrize("options, pattern", [
    (["--sparsities", "0,0.9"], r"--sparsities 0: expected fractions in \(0, 1\)"),
    (["--sparsities", "0.9", "--runs", "0"], r"--runs 0"),
])
def test_sweep_checks_grid_first(capsys, tmp_path, no_sweep_work, options, pattern):
    fails(capsys, ["sweep", FP32, "--calib", CALIB, "--test", TEST, "--out", tmp_path / "o"] + options, pattern)
    assert not (tmp_path / "o").exists()
