"""`deepchip demo`: the main job end to end on the bundled model.

Quantize the bundled ternary-trained digits model (real data, shipped with the package), compile
it for x86, run the test split through the compiled library, and print accuracy, weight size and
latency next to onnxruntime; then, if the QEMU aarch64 device answers, cross-compile for aarch64
and run it there over TVM RPC.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np


def register(sub) -> None:
    p = sub.add_parser("demo", help="quantize, compile and run the bundled model (x86 and QEMU aarch64)")
    p.add_argument("--out", default=None, help="directory for the artifacts (default: a temp dir)")
    p.add_argument("--rpc", default=os.environ.get("DEEPCHIP_RPC"), help="aarch64 RPC server HOST:PORT")
    p.add_argument("--arm-samples", type=int, default=32, help="test images to run on the emulated device")
    p.set_defaults(func=run)


def _say(msg):
    print(msg, flush=True)


def run(args) -> int:
    from tvm_deepchip.output_paths import check_dir

    if args.out:
        check_dir(args.out, "--out")
    import onnx
    import onnxruntime as ort
    import tvm
    from tvm import relax

    import tvm_deepchip
    from tvm_deepchip.timing import median_ms
    from tvm_deepchip import data

    out = Path(args.out or tempfile.mkdtemp(prefix="deepchip-demo-"))
    out.mkdir(parents=True, exist_ok=True)
    d = Path(data.__file__).parent
    test = np.load(d / "digits_test.npz")
    calib = np.load(d / "digits_calib.npz")
    x_test, y_test = test["x"].astype(np.float32), test["y"]
    x_calib = calib[calib.files[0]].astype(np.float32)

    _say(f"[1/4] quantize {d / 'digits_ternary_float.onnx'} (calibration: {len(x_calib)} images)")
    qpath = out / "digits_q.onnx"
    _, report = tvm_deepchip.quantize(str(d / "digits_ternary_float.onnx"), str(qpath), calib=x_calib)
    print(report.format() if hasattr(report, "format") else report)

    _say("[2/4] compile for x86")
    so = out / "digits_x86.so"
    shapes = {"input": [1, *x_test.shape[1:]]}  # batch 1: the latency a deployed model sees
    compiled = tvm_deepchip.compile(str(qpath), "x86", input_shapes=shapes, output=so)
    print(compiled.report.format())

    _say(f"[3/4] run the {len(x_test)} test images through {so}")
    vm = relax.VirtualMachine(tvm.runtime.load_module(str(so)), tvm.cpu())
    batch = compiled.input_shapes[next(iter(compiled.input_shapes))][0]
    preds = []
    for i in range(0, len(x_test), batch):
        xb = x_test[i : i + batch]
        if len(xb) < batch:  # the model is compiled for a static batch: pad the last one
            xb = np.concatenate([xb, np.zeros((batch - len(xb),) + xb.shape[1:], np.float32)])
        preds.append(vm["main"](tvm.runtime.tensor(xb)).numpy().argmax(1))
    acc = float(np.mean(np.concatenate(preds)[: len(x_test)] == y_test))
    fp32 = onnx.load(str(d / "digits_fp32.onnx"))
    sess32 = ort.InferenceSession(fp32.SerializeToString(), providers=["CPUExecutionProvider"])
    name = fp32.graph.input[0].name
    acc32 = float(np.mean(np.concatenate([sess32.run(None, {name: x_test[i : i + 1]})[0].argmax(1)
                                          for i in range(len(x_test))]) == y_test))
    x1 = tvm.runtime.tensor(x_test[:batch])
    ms_ours = median_ms(lambda: vm["main"](x1))
    ms_ort = median_ms(lambda: sess32.run(None, {name: x_test[:1]}))
    t = compiled.report.totals()
    _say(f"accuracy: compiled ternary {acc:.2%} vs FP32 (onnxruntime) {acc32:.2%} on {len(x_test)} test images")
    _say(f"weights: {t['weight_bytes']} B vs FP32 {t['fp32_weight_bytes']} B ({t['compression']:.1f}x smaller)")
    _say(f"latency (batch {batch}, this machine): tvm-deepchip {ms_ours:.3f} ms, onnxruntime FP32 {ms_ort:.3f} ms")

    if not args.rpc:
        _say("[4/4] aarch64: skipped (no device; start one with `deepchip qemu up` or pass --rpc HOST:PORT)")
        return 0
    from tvm_deepchip import remote

    _say(f"[4/4] cross-compile for aarch64 and run {args.arm_samples} images on {args.rpc} (QEMU: emulation timing)")
    arm_so = out / "digits_aarch64.so"
    tvm_deepchip.compile(str(qpath), "aarch64", input_shapes=shapes, output=arm_so)
    n = min(args.arm_samples, len(x_test)) // batch * batch
    ours = np.concatenate([vm["main"](tvm.runtime.tensor(x_test[i : i + batch])).numpy() for i in range(0, n, batch)])
    arm = np.concatenate([remote.run_remote(str(arm_so), x_test[i : i + batch], rpc=args.rpc)
                          for i in range(0, n, batch)])
    same = bool(np.array_equal(arm.argmax(1), ours.argmax(1)))
    _say(f"aarch64 over RPC: {n} images, argmax equal to x86: {same}, max |diff| {np.abs(arm - ours).max():.2e}")
    return 0 if same else 1
