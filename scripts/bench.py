#!/usr/bin/env python3
"""Benchmark: tvm-deepchip against its peers, measured in one run on this machine.

For each network and sparsity (batch 1, 2 threads): onnxruntime FP32, onnxruntime int8 (static
QDQ, per-channel, its own quantizer), TVM's default FP32 build, and tvm-deepchip (our quantizer
+ compiler, committed tuning logs if they match this CPU). Median of --runs runs after warm-up,
the three taking turns in 5 blocks (a burst of noise on a shared machine hits them all),
per-layer times of our kernels (each built and timed alone), and this CPU's measured int8 MAC peak
(scripts/peak/int8_peak.c) as the roofline. Writes BENCHMARKS.md and bench.png (+ bench.json).

    python3 scripts/bench.py                      # all three networks, 90% and 95%
    python3 scripts/bench.py --models svhn_convnet --sparsity 0.9 --runs 50
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
THREADS = 2

from tvm_deepchip.timing import interleaved_ms, run_times  # noqa: E402


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def ort_session(model_bytes):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = THREADS
    so.inter_op_num_threads = 1
    return ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])


def ort_int8(model, calib, path):
    """onnxruntime's own static QDQ int8 quantization, per-channel: the int8 peer."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{model.graph.input[0].name: calib[i : i + 1]} for i in range(len(calib))])

        def get_next(self):
            return next(self.it, None)

    src = path.with_suffix(".fp32.onnx")
    import onnx

    onnx.save(model, str(src))
    quantize_static(str(src), str(path), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    return path.read_bytes()


def vm_times(executable, x):
    """n -> the durations (s) of n runs of the VM's main, by TVM's time evaluator."""
    import tvm
    from tvm import relax

    dev = tvm.cpu()
    vm = relax.VirtualMachine(executable, dev)
    vm.set_input("main", tvm.runtime.tensor(x, dev))
    return lambda n: list(vm.time_evaluator("invoke_stateful", dev, number=1, repeat=n, min_repeat_ms=0)("main").results)


def vm_timer(executable, x, runs):
    times = vm_times(executable, x)
    times(1)  # warm-up
    return 1e3 * float(np.median(times(runs)))


def per_layer(qmodel, compiled, runs):
    """Per-layer times (us) of our kernels: each layer's primitive built alone with the same
    schedule and format, timed with TVM's time evaluator (TVM 0.27's Relax VM has no profiler)."""
    from tvm_deepchip import compiler, format_choice, targets

    plan = compiler.lower(qmodel, targets.BuildTarget.of(compiled.preset)).plan
    fmts = {r["layer"]: r.get("format") for r in compiled.report.layers}
    out = {}
    for layer, shape in plan.lowered_layers():
        us = format_choice.time_layer(layer, shape, fmts.get(layer.name) or "sparse", compiled.preset,
                                      number=max(5, runs // 5), repeat=3)
        out[layer.name] = us
    return out


def int8_peak():
    exe = Path(tempfile.mkdtemp()) / "int8_peak"
    subprocess.run(["gcc", "-O2", "-march=native", str(ROOT / "scripts/peak/int8_peak.c"), "-o", str(exe)], check=True)
    return json.loads(subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout)


def bench_model(name, sparsity, runs, workdir):
    import onnx
    import tvm

    import tvm_deepchip
    from tvm_deepchip import models

    model = models.MODELS[name](batch=1, seed=0)
    shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    rng = np.random.default_rng(0)
    calib = rng.random([8] + shape[1:], dtype=np.float32)
    x = rng.random(shape, dtype=np.float32)
    feed = {model.graph.input[0].name: x}
    row = {"model": name, "sparsity": sparsity}

    log(f"{name}: onnxruntime FP32 and int8 (static QDQ, per-channel) sessions")
    sess = ort_session(model.SerializeToString())
    sess8 = ort_session(ort_int8(model, calib, workdir / f"{name}.ort_int8.onnx"))

    if not getattr(bench_model, "tvm_fp32_done", {}).get(name):
        log(f"{name}: TVM default FP32 build")
        from tvm.relax.frontend.onnx import from_onnx

        from tvm_deepchip import targets

        tgt = targets.tvm_target(targets.get_preset("x86"))
        ex = tvm.compile(from_onnx(model, keep_params_in_input=False), tgt)
        row["tvm_fp32_ms"] = vm_timer(ex, x, max(3, runs // 10))
        bench_model.__dict__.setdefault("tvm_fp32_done", {})[name] = row["tvm_fp32_ms"]
    else:
        row["tvm_fp32_ms"] = bench_model.tvm_fp32_done[name]

    log(f"{name}: tvm-deepchip quantize at {sparsity:.0%} + compile")
    qpath = workdir / f"{name}.s{int(sparsity * 100)}.q.onnx"
    tvm_deepchip.quantize(model, qpath, sparsity=sparsity, calib=calib)
    qmodel = onnx.load(str(qpath))
    compiled = tvm_deepchip.compile(qmodel, "x86")
    log(f"{name}: timing onnxruntime FP32, onnxruntime int8 and tvm-deepchip in turns")
    ms = interleaved_ms({
        "ort_fp32_ms": lambda n: run_times(lambda: sess.run(None, feed), n),
        "ort_int8_ms": lambda n: run_times(lambda: sess8.run(None, feed), n),
        "deepchip_ms": vm_times(compiled.executable, x),
    }, runs)
    row.update(ms)
    totals = compiled.report.totals()
    row["weight_bytes"], row["fp32_weight_bytes"] = totals["weight_bytes"], totals["fp32_weight_bytes"]
    row["schedules"] = compiled.report.schedules
    row["tuning_log"] = compiled.report.tuning_log
    row["layers"] = per_layer(qmodel, compiled, runs)
    from tvm_deepchip import oracle

    ours = __import__("tvm").relax.VirtualMachine(compiled.executable, tvm.cpu())["main"](tvm.runtime.tensor(x)).numpy()
    ref = oracle.run(qmodel, x)
    row["argmax_agrees_with_ort"] = bool(ours.argmax() == ref.argmax())
    row["max_abs_diff_vs_ort"] = float(np.abs(ours - ref).max())
    row["report"] = compiled.report.layers
    log(f"{name} {sparsity:.0%}: ort fp32 {row['ort_fp32_ms']:.3f} ms, ort int8 {row['ort_int8_ms']:.3f} ms, "
        f"tvm fp32 {row['tvm_fp32_ms']:.1f} ms, deepchip {row['deepchip_ms']:.3f} ms")
    return row


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    flags = next((l.split(":", 1)[1].split() for l in open("/proc/cpuinfo") if l.startswith("flags")), [])
    isa = [f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni") if f in flags]
    from tvm.target import codegen

    return {"cpu": cpu, "llvm_cpu": codegen.llvm_get_system_cpu(), "isa": isa, "cores": os.cpu_count(),
            "python": platform.python_version()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["svhn_convnet", "resnet44", "alexnet"])
    ap.add_argument("--sparsity", nargs="+", type=float, default=[0.9, 0.95])
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"))
    args = ap.parse_args(argv)
    os.environ.setdefault("TVM_NUM_THREADS", str(THREADS))
    workdir = Path(tempfile.mkdtemp(prefix="deepchip-bench-"))
    result = {"machine": machine(), "command": "python3 scripts/bench.py " + " ".join(argv or sys.argv[1:]),
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "threads": THREADS, "runs": args.runs}
    log(f"machine: {result['machine']}")
    result["int8_peak"] = int8_peak()
    result["rows"] = [bench_model(m, s, args.runs, workdir) for m in args.models for s in args.sparsity]
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1))
    from bench_report import write_report

    write_report(result, out)
    log(f"wrote {out}, {out.with_suffix('.json')} and {out.with_name('bench.png')}")


if __name__ == "__main__":
    main()
