"""Output paths: refused up front when they cannot be written (special files, directories,
unwritable places), symlinks followed, atomic writes that honour the umask, and SIGINT/SIGTERM
as clean exits that leave no temporary file (real `deepchip` processes)."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from tvm_deepchip import output_paths
from tvm_deepchip.cli import main
from tvm_deepchip.errors import InputError
from tvm_deepchip.onnx_io import save_model
from qdq_builders import small_convnet

ROOT = Path(__file__).resolve().parent.parent


def hidden(directory: Path) -> list[str]:
    return sorted(n for n in os.listdir(directory) if n.startswith("."))


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield
    os.umask(old)


# --- refusing what cannot be written, before any work ----------------------------------------

def test_device_is_refused_and_kept():
    before = os.stat("/dev/null")
    with pytest.raises(InputError, match="/dev/null: is a character device, not a regular file"):
        output_paths.check_file("/dev/null", "-o")
    with pytest.raises(InputError, match="character device"):
        with output_paths.atomic_file("/dev/null") as tmp:
            tmp.write_text("never")
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev and after.st_ino == before.st_ino


def test_fifo_and_socket_are_refused_and_kept(tmp_path):
    fifo = tmp_path / "pipe.onnx"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match=f"{fifo}: is a FIFO"):
        save_model(small_convnet(), fifo)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and hidden(tmp_path) == []
    sock_path = tmp_path / "s.so"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(sock_path))
        with pytest.raises(InputError, match="is a socket"):
            output_paths.check_file(sock_path, "-o")
    assert stat.S_ISSOCK(os.stat(sock_path).st_mode)


def test_directory_where_a_file_is_wanted_and_the_reverse(tmp_path):
    with pytest.raises(InputError, match=f"-o {tmp_path}: is a directory"):
        output_paths.check_file(tmp_path, "-o")
    f = tmp_path / "existing.txt"
    f.write_text("keep")
    for check in (output_paths.check_dir, output_paths.check_new_dir):
        with pytest.raises(InputError, match=f"{f}: is a regular file, not a directory"):
            check(f, "-o")
    assert f.read_text() == "keep"


def test_path_under_a_regular_file(tmp_path):
    f = tmp_path / "plain.txt"
    f.write_text("keep")
    for path in (f / "x.onnx", f / "a" / "b" / "x.onnx"):
        with pytest.raises(InputError, match=f"{path}: {f} is a regular file, not a directory"):
            output_paths.check_file(path, "-o")
    assert f.read_text() == "keep"


def test_missing_parent_that_cannot_be_created():
    with pytest.raises(InputError, match="cannot write the missing directories under /proc"):
        output_paths.check_file("/proc/deepchip-no-such-dir/x.so", "-o")
    with pytest.raises(InputError, match="cannot write"):
        output_paths.check_dir("/proc/deepchip-no-such-dir", "--out")


def _unprivileged(code: str) -> subprocess.CompletedProcess:
    """Run Python code without the right to ignore file permissions.

    Root writes into read-only directories through CAP_DAC_OVERRIDE; `setpriv` drops it (and
    CAP_DAC_READ_SEARCH) from the bounding set, so the child keeps root's uid, and with it access
    to this checkout's venv wherever CI placed it, but obeys the permission bits."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-c", textwrap.dedent(code)]
    if os.geteuid() == 0:
        cmd = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"] + cmd
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd="/")


def test_read_only_directory_and_file_are_refused(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    (ro / "old.onnx").write_text("keep")
    os.chmod(ro / "old.onnx", 0o444)
    os.chmod(ro, 0o555)
    try:
        res = _unprivileged(f"""
            from tvm_deepchip.cli import main
            for path in ("{ro}/new.onnx", "{ro}/sub/new.onnx"):
                assert main(["models", "export", "svhn_convnet", "-o", path]) == 2
            assert main(["sweep", "m.onnx", "--calib", "c.npz", "--test", "t.npz", "--sparsities", "0.5",
                         "--out", "{ro}/sweep"]) == 2
            assert main(["models", "export", "svhn_convnet", "-o", "{ro}/old.onnx"]) == 2
        """)
    finally:
        os.chmod(ro, 0o755)
    assert res.returncode == 0, res.stderr
    assert f"-o {ro}/new.onnx: cannot write in {ro} (Permission denied)" in res.stderr
    assert f"-o {ro}/sub/new.onnx: cannot write the missing directories under {ro}" in res.stderr
    assert f"--out {ro}/sweep: cannot write" in res.stderr
    assert f"-o {ro}/old.onnx" in res.stderr and "read-only" in res.stderr
    assert sorted(os.listdir(ro)) == ["old.onnx"] and (ro / "old.onnx").read_text() == "keep"


# --- symlinks: the target is written, the link kept ------------------------------------------

def test_symlink_to_a_file_writes_its_target(tmp_path):
    real = tmp_path / "real" / "model.onnx"
    real.parent.mkdir()
    real.write_text("old")
    link = tmp_path / "link.onnx"
    link.symlink_to(real)
    dangling = tmp_path / "dangling.onnx"
    dangling.symlink_to(tmp_path / "real" / "new.onnx")
    for path in (link, dangling):
        save_model(small_convnet(), path)
        assert path.is_symlink()
    assert real.read_bytes().startswith(b"\x08") and (tmp_path / "real" / "new.onnx").is_file()
    assert hidden(tmp_path) == [] and hidden(real.parent) == []
    loop = tmp_path / "loop.onnx"
    loop.symlink_to(loop)
    with pytest.raises(InputError, match="loop.onnx"):
        output_paths.check_file(loop, "-o")


def test_symlink_to_a_device_is_refused(tmp_path):
    link = tmp_path / "out.so"
    link.symlink_to("/dev/null")
    with pytest.raises(InputError, match=r"out.so \(-> /dev/null\): is a character device"):
        output_paths.check_file(link, "-o")
    assert link.is_symlink() and stat.S_ISCHR(os.stat("/dev/null").st_mode)


# --- atomic writes -----------------------------------------------------------------------------

def test_failed_write_leaves_nothing_and_keeps_the_old_file(tmp_path):
    out = tmp_path / "r.json"
    out.write_text("old")
    for exc in (RuntimeError, KeyboardInterrupt):
        with pytest.raises(exc):
            with output_paths.atomic_file(out) as tmp:
                tmp.write_text("half")
                raise exc("stop")
    assert out.read_text() == "old" and os.listdir(tmp_path) == ["r.json"]


def test_missing_parents_that_can_be_created_are(tmp_path):
    out = tmp_path / "a" / "b" / "r.json"
    with output_paths.atomic_file(out) as tmp:
        tmp.write_text("{}")
    assert out.read_text() == "{}" and hidden(out.parent) == []


def test_files_honour_the_umask(tmp_path, umask_027):
    save_model(small_convnet(), tmp_path / "m.onnx")
    assert stat.S_IMODE(os.stat(tmp_path / "m.onnx").st_mode) == 0o640
    with output_paths.atomic_file(tmp_path / "x.npy") as tmp:
        np.save(tmp, np.zeros(3))
    assert stat.S_IMODE(os.stat(tmp_path / "x.npy").st_mode) == 0o640
    kept = tmp_path / "kept.json"
    kept.write_text("old")
    os.chmod(kept, 0o604)
    with output_paths.atomic_file(kept) as tmp:  # replacing keeps the mode, as open(path, "w")
        tmp.write_text("new")
    assert stat.S_IMODE(os.stat(kept).st_mode) == 0o604 and kept.read_text() == "new"
    with output_paths.atomic_dir(tmp_path / "bundle") as tmp:
        (tmp / "f").write_text("x")
    assert stat.S_IMODE(os.stat(tmp_path / "bundle").st_mode) == 0o750


def test_atomic_dir_replaces_a_directory_and_follows_a_link(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (real / "old").write_text("old")
    link = tmp_path / "link"
    link.symlink_to(real)
    with output_paths.atomic_dir(link) as tmp:
        (tmp / "new").write_text("new")
    assert link.is_symlink() and os.listdir(real) == ["new"] and hidden(tmp_path) == []
    with pytest.raises(RuntimeError):
        with output_paths.atomic_dir(real) as tmp:
            (tmp / "half").write_text("x")
            raise RuntimeError("stop")
    assert os.listdir(real) == ["new"] and hidden(tmp_path) == []


def _fake_wheels(d: Path) -> dict:
    """Wheels with just the members a bundle takes (the real ones are downloaded)."""
    import zipfile

    members = {"apache_tvm": ["tvm/lib/libtvm_runtime.so"], "typing_extensions": ["typing_extensions.py"],
               "apache_tvm_ffi": ["tvm_ffi/lib/libtvm_ffi.so", "tvm_ffi/__init__.py"]}
    wheels = {}
    for dist, names in members.items():
        wheels[dist] = d / f"{dist}-0-py3-none-any.whl"
        with zipfile.ZipFile(wheels[dist], "w") as z:
            for name in names:
                z.writestr(name, f"fake {name}")
    return wheels


def _tiny_vm_library(d: Path) -> Path:
    """A real (trivial) Relax VM library: y = x + 1."""
    import tvm
    from tvm.script import ir as I
    from tvm.script import relax as R

    @I.ir_module
    class Tiny:
        @R.function
        def main(x: R.Tensor((4,), "float32")) -> R.Tensor((4,), "float32"):
            return R.add(x, R.const(1.0, "float32"))

    path = d / "tiny.so"
    tvm.compile(Tiny, target=tvm.target.Target({"kind": "llvm", "mtriple": "x86_64-linux-gnu"})).export_library(str(path))
    return path


def test_bundle_replaces_through_a_link_under_the_umask(tmp_path, monkeypatch, umask_027):
    from tvm_deepchip import bundle as bundle_mod

    wheels = _fake_wheels(tmp_path)
    monkeypatch.setattr(bundle_mod, "runtime_wheels", lambda arch: wheels)
    real, link = tmp_path / "boards" / "b1", tmp_path / "b"
    real.parent.mkdir()
    link.symlink_to(real)
    model = _tiny_vm_library(tmp_path)  # bundle checks it is a Relax VM library for x86-64
    for _ in range(2):  # written, then replaced
        bundle_mod.bundle(model, link, arch="x86_64")
    assert link.is_symlink() and json.loads((real / "manifest.json").read_text())["arch"] == "x86_64"
    assert stat.S_IMODE(os.stat(real).st_mode) == 0o750
    assert stat.S_IMODE(os.stat(real / "manifest.json").st_mode) == 0o640
    assert stat.S_IMODE(os.stat(real / "run.py").st_mode) == 0o750
    assert hidden(tmp_path) == [] and hidden(real.parent) == []
    plain = tmp_path / "plain.txt"
    plain.write_text("keep")
    monkeypatch.setattr(bundle_mod, "runtime_wheels", lambda arch: pytest.fail("downloaded before the check"))
    with pytest.raises(InputError, match=f"{plain}: is a regular file, not a directory"):
        bundle_mod.bundle(model, plain, arch="x86_64")
    assert plain.read_text() == "keep"


# --- the commands check their outputs at argument time ---------------------------------------

def test_cli_refuses_bad_outputs_before_any_work(tmp_path, capsys, monkeypatch):
    from tvm_deepchip import compiler, quantizer, remote, sweep

    def never(*_a, **_k):
        raise AssertionError("the work started before the output was checked")

    for mod, name in ((compiler, "compile"), (quantizer, "quantize"), (remote, "run"), (sweep, "sweep")):
        monkeypatch.setattr(mod, name, never)
    f = tmp_path / "plain.txt"
    f.write_text("keep")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    (tmp_path / "q.onnx").write_text("not read")
    cases = [
        (["compile", "q.onnx", "-o", "/dev/null"], "-o /dev/null: is a character device"),
        (["compile", "q.onnx", "-o", str(tmp_path)], f"-o {tmp_path}: is a directory"),
        (["compile", "q.onnx", "-o", "m.so", "--report", f"{f}/r.json"], f"--report {f}/r.json: {f} is a regular file"),
        (["quantize", "q.onnx", "-o", str(fifo)], f"-o {fifo}: is a FIFO"),
        (["quantize", "q.onnx", "-o", "m.onnx", "--report", str(tmp_path)], "--report"),
        (["run", "m.so", "--input", "x.npy", "-o", "/dev/null"], "-o /dev/null: is a character device"),
        (["bundle", "m.so", "-o", str(f)], f"-o {f}: is a regular file, not a directory"),
        (["models", "export", "svhn_convnet", "-o", "/dev/null"], "-o /dev/null"),
        (["sweep", "m.onnx", "--calib", "c.npz", "--test", "t.npz", "--sparsities", "0.5", "--out", f"{f}/o"],
         f"--out {f}/o: {f} is a regular file"),
        (["demo", "--out", str(f)], f"--out {f}: is a regular file, not a directory"),
    ]
    monkeypatch.chdir(tmp_path)
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and "Traceback" not in err, (argv, err)
    assert f.read_text() == "keep" and stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert sorted(os.listdir(tmp_path)) == ["fifo", "plain.txt", "q.onnx"]


def test_tune_checks_its_directory_before_tuning(tmp_path):
    from tvm_deepchip.tuning import tune

    f = tmp_path / "plain.txt"
    f.write_text("keep")
    with pytest.raises(InputError, match=f"tuning directory {f}/db: {f} is a regular file"):
        tune(small_convnet(), "x86", work_dir=f / "db", trials=1, choose_formats=False)


# --- one real build: symlinked output, modes, `run -o` ---------------------------------------

def test_compile_through_a_symlink_under_a_umask(tmp_path, umask_027):
    real = tmp_path / "lib" / "model.so"
    real.parent.mkdir()
    link = tmp_path / "model.so"
    link.symlink_to(real)
    save_model(small_convnet(seed=1), tmp_path / "q.onnx")
    assert main(["compile", str(tmp_path / "q.onnx"), "-o", str(link), "--tuning-log", "none",
                 "--report", str(tmp_path / "reports" / "r.json")]) == 0
    assert link.is_symlink() and real.is_file()
    assert stat.S_IMODE(os.stat(real).st_mode) in (0o640, 0o750)  # data, or as a linker makes it
    assert stat.S_IMODE(os.stat(tmp_path / "reports" / "r.json").st_mode) == 0o640
    assert json.loads((tmp_path / "reports" / "r.json").read_text())
    np.save(tmp_path / "x.npy", np.random.default_rng(0).random((1, 3, 12, 12), dtype=np.float32))
    assert main(["run", str(link), "--input", str(tmp_path / "x.npy"), "-o", str(tmp_path / "y.npy")]) == 0
    assert stat.S_IMODE(os.stat(tmp_path / "y.npy").st_mode) == 0o640
    assert hidden(tmp_path) == [] and hidden(real.parent) == []


# --- signals: real processes -------------------------------------------------------------------

def _start(argv, cwd) -> subprocess.Popen:
    return _python(["-m", "tvm_deepchip", *argv], cwd)


def _python(args, cwd) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    # SIGINT as a terminal delivers it: a suite started in the background by a non-interactive
    # shell (`cmd &`) hands its children SIGINT ignored, and the command would then rightly ignore it
    return subprocess.Popen([sys.executable, *args], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _wait_for(proc, ready, what):
    while not ready():
        if proc.poll() is not None:
            pytest.fail(f"the command ended before {what}: {proc.stderr.read()}")
        time.sleep(0.005)


def _finish(proc) -> tuple[int, str]:
    try:
        _, err = proc.communicate(timeout=300)
    finally:
        try:  # children it left running (a linker): only this test's process group
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return proc.returncode, err


def _uses_tvm(pid) -> bool:
    try:
        return "libtvm" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


@pytest.fixture(scope="module")
def qmodel(tmp_path_factory):
    path = tmp_path_factory.mktemp("q") / "q.onnx"
    save_model(small_convnet(seed=3), path)
    return path


def test_sigterm_during_export_removes_the_temporary_file(tmp_path, qmodel):
    proc = _start(["compile", str(qmodel), "-o", "out.so", "--tuning-log", "none"], tmp_path)
    _wait_for(proc, lambda: hidden(tmp_path), "the export started")
    proc.send_signal(signal.SIGTERM)
    rc, err = _finish(proc)
    assert rc == 128 + signal.SIGTERM, err
    assert "deepchip compile: terminated (SIGTERM)" in err and "Traceback" not in err, err
    assert os.listdir(tmp_path) == []


_HALF_BUILT = textwrap.dedent("""
    import os, signal, sys
    from tvm_deepchip import interrupts

    class HalfBuilt:  # TVM's TempDirectory: the signal lands before its attribute is set
        def __init__(self, signal_it):
            if signal_it:
                os.kill(os.getpid(), signal.SIGTERM)
            self.path = "set"

        def __del__(self):
            self.path

    signal_it = sys.argv[1] == "signal"
    with interrupts.handled("half-built") as on_signal:
        try:
            obj = HalfBuilt(signal_it)
            del obj.path
            del obj  # no signal: a real finalizer error, which must still be reported
            code = 0
        except BaseException as err:
            code = on_signal.report(interrupts.signal_of(err))
    sys.stderr.flush()
    os._exit(code)
""")


@pytest.mark.parametrize("signal_it", [True, False], ids=["signal", "no-signal"])
def test_a_finalizer_cut_short_by_the_signal_prints_no_traceback(tmp_path, signal_it):
    proc = _python(["-c", _HALF_BUILT, "signal" if signal_it else "plain"], tmp_path)
    rc, err = _finish(proc)
    if signal_it:
        assert rc == 128 + signal.SIGTERM and err == "half-built: terminated (SIGTERM)\n", err
    else:
        assert rc == 0 and "AttributeError" in err, err


def test_sigint_while_building_is_one_line(tmp_path, qmodel):
    proc = _start(["compile", str(qmodel), "-o", "out.so", "--tuning-log", "none"], tmp_path)
    _wait_for(proc, lambda: _uses_tvm(proc.pid), "TVM was loaded")
    proc.send_signal(signal.SIGINT)
    rc, err = _finish(proc)
    assert rc == 130, err
    assert "deepchip compile: interrupted" in err and "Traceback" not in err and "RuntimeError" not in err, err
    assert os.listdir(tmp_path) == []


def test_a_swallowed_signal_still_ends_the_process_cleanly(tmp_path):
    """Where the exception never reaches the command line (caught inside a library, or a long
    C++ call), the watchdog removes the temporary files and exits after the grace period."""
    script = tmp_path / "stuck.py"
    script.write_text(textwrap.dedent(f"""
        import sys, time
        from tvm_deepchip import interrupts, output_paths
        with interrupts.handled("deepchip stuck"):
            with output_paths.atomic_file("{tmp_path}/out/x.so") as tmp:
                tmp.write_text("half")
                ready = False
                while True:  # "ready" inside the try: the signal cannot land between them
                    try:
                        if not ready:
                            ready = True
                            print("ready", flush=True)
                        while True:
                            time.sleep(0.1)
                    except BaseException:  # a library that swallows every error
                        pass
    """))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, str(script)], env=env, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and err == "deepchip stuck: terminated (SIGTERM)\n", err
    assert os.listdir(tmp_path / "out") == []
