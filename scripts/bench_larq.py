"""Larq Compute Engine as a peer of scripts/bench.py's BNN ("xnor") rows, from the project's side.

LCE needs TensorFlow 2.16 and numpy < 2, so it lives in a venv of its own (scripts/setup_larq.sh),
named by $DEEPCHIP_LARQ_PYTHON; scripts/larq_peer.py runs there. Here: whether that venv is usable
(`available`), the conversion of a case's quantized BNN ONNX model with its check against
onnxruntime (`convert`), and `lce_timer`, a factory for scripts/bench_isolated.py's Isolated: in the
contender's process it starts larq_peer.py's server under the Larq python and relays run counts
and durations over the server's stdin / stdout (the server waits until its own threads are quiet
before it answers, since Isolated's settle watches only its direct child).
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np

ENV = "DEEPCHIP_LARQ_PYTHON"
PEER = Path(__file__).resolve().parent / "larq_peer.py"
KEY = "lce"  # the peer's key in BENCHMARKS.json (bench_report.PEERS)


def available(environ=os.environ) -> tuple[str | None, str]:
    """(the Larq venv's python, "") when $DEEPCHIP_LARQ_PYTHON names an executable, else (None, why not)."""
    python = environ.get(ENV, "")
    if not python:
        return None, f"${ENV} is not set (make the venv: bash scripts/setup_larq.sh, then export {ENV}=/tmp/larq_venv/bin/python)"
    if not (Path(python).is_file() and os.access(python, os.X_OK)):
        return None, f"${ENV}={python} is not an executable file"
    return python, ""


def first_lines(text: str, n: int = 3) -> str:
    """The last traceback line and the first lines of a failed command's stderr, in one line (for the log)."""
    lines = [ln for ln in text.strip().splitlines() if ln.strip() and "cuda" not in ln.lower()]
    return " | ".join(lines[-1:] + lines[:n]) if lines else "(no output)"


def convert(python: str, qpath: Path, x: np.ndarray, workdir: Path) -> tuple[Path, Path, dict]:
    """The case's quantized BNN model as LCE's .tflite, the input saved as .npy (what the server
    reads), and larq_peer.py's report: versions, notes
    (where the Larq model differs from the ONNX one), operator counts, argmax and largest logit
    difference against onnxruntime on `x`. Raises RuntimeError with the failure's first lines."""
    xpath, tflite = workdir / f"{qpath.stem}.x.npy", workdir / f"{qpath.stem}.lce.tflite"
    np.save(xpath, x)
    done = subprocess.run([python, str(PEER), "convert", str(qpath), str(tflite), "--check", str(xpath)],
                          capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"larq_peer.py convert failed (exit {done.returncode}): {first_lines(done.stderr)}")
    return tflite, xpath, json.loads(done.stdout.strip().splitlines()[-1])


class _Server:
    def __init__(self, python: str, tflite: Path, x: Path, threads: int):
        self.proc = subprocess.Popen([python, str(PEER), "serve", str(tflite), str(x), "--threads", str(threads)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        if json.loads(self._line()) != {"ready": True}:
            raise RuntimeError("larq_peer.py serve: unexpected greeting")

    def _line(self) -> str:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"larq_peer.py serve ended (exit code {self.proc.wait()})")
        return line

    def __call__(self, n: int) -> list[float]:
        self.proc.stdin.write(f"{int(n)}\n")
        self.proc.stdin.flush()
        return [float(t) for t in json.loads(self._line())]


def lce_timer(python: str, tflite: Path, x: Path, threads: int):
    """Isolated's factory: `n -> n durations (s)` of LCE's interpreter (`threads` threads) on input
    `x` (.npy, NCHW). The server ends when this process does (its stdin closes)."""
    return _Server(python, tflite, x, threads)


def timers(python: str, case, qpath: Path, workdir: Path, sessions: int, threads: int, isolated, log):
    """({"lce#i": Isolated timer}, check report) for one BNN case, or ({}, None) after logging why not."""
    try:
        tflite, xpath, report = convert(python, qpath, case.x, workdir)
    except (RuntimeError, subprocess.TimeoutExpired, ValueError) as err:
        log(f"{case.name}: Larq Compute Engine peer skipped: {err}")
        return {}, None
    log(f"{case.name}: Larq Compute Engine converted ({report['ops'].get('LceBconv2d', 0)} binary convs); "
        f"argmax = onnxruntime: {report['argmax_agrees_with_ort']}, largest logit difference "
        f"{report['max_abs_diff_vs_ort']:.2g}")
    return {f"{KEY}#{i}": isolated(f"{KEY}#{i}", lce_timer, python, tflite, xpath, threads)
            for i in range(sessions)}, report
