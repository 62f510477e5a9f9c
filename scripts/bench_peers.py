"""The peers scripts/bench.py measures tvm-deepchip against, each as a timer `n -> n durations (s)`.

- onnxruntime FP32 on the float model, and int8 on the QDQ model its own `quantize_static` makes
  (static, per-channel weights, uint8 activations: what an onnxruntime user deploys);
- OpenVINO FP32 on the float model, and int8 on that same QDQ model (OpenVINO reads onnxruntime's
  QDQ ONNX and runs it with its int8 kernels), latency hint, the same thread count;
- tvm-deepchip's compiled library (the .so `deepchip compile` writes), timed by TVM's time
  evaluator around the VM's main; and two of its builds (default formats, one baseline format)
  in one process, in turns, as ratios (vm_ab_timer).
Each factory takes only picklable arguments: scripts/bench_isolated.py calls it in the
contender's own process.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from tvm_deepchip.timing import run_times


def ort_timer(model_bytes: bytes, feed: dict, threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])
    return lambda n: run_times(lambda: sess.run(None, feed), n)


def ort_int8_model(model, calib: np.ndarray, workdir: Path) -> Path:
    """onnxruntime's own static QDQ int8 quantization of `model`, per-channel: the int8 peers' model."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    name = model.graph.input[0].name
    batch = max(1, model.graph.input[0].type.tensor_type.shape.dim[0].dim_value)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{name: calib[i : i + batch]} for i in range(0, len(calib) - batch + 1, batch)])

        def get_next(self):
            return next(self.it, None)

    src, dst = workdir / f"{model.graph.name}.fp32.onnx", workdir / f"{model.graph.name}.ort_int8.onnx"
    onnx.save(model, str(src))
    quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    return dst


def openvino_timer(path: Path, x: np.ndarray, threads: int, precision: str = "f32"):
    """OpenVINO on the CPU plugin; `precision` f32 keeps FP32 layers FP32 (no bf16/fp16 rewrite), a
    QDQ model still runs its quantized parts as int8."""
    import openvino as ov

    compiled = ov.Core().compile_model(str(path), "CPU", {
        "INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": precision})
    request = compiled.create_infer_request()
    return lambda n: run_times(lambda: request.infer({0: x}), n)


def vm_timer(library: Path, x: np.ndarray):
    """tvm-deepchip (or any exported Relax executable): TVM's time evaluator around main."""
    import tvm
    from tvm import relax

    dev = tvm.cpu()
    vm = relax.VirtualMachine(tvm.runtime.load_module(str(library)), dev)
    vm.set_input("main", tvm.runtime.tensor(x, dev))
    return lambda n: list(vm.time_evaluator("invoke_stateful", dev, number=1, repeat=n, min_repeat_ms=0)("main").results)


AB_CHUNK = 10  # runs of one build per turn of vm_ab_timer


def vm_ab_timer(library: Path, baseline: Path, x: np.ndarray):
    """Two builds of one model in ONE process, taking turns of AB_CHUNK runs (the order flipped
    every pair): `n -> n ratios`, the baseline's median over the default's, pair by pair. Each
    build's own process (vm_timer) also samples that process's memory layout, and on a VM two
    processes of one build differ by more than two formats do (AlexNet on a 2-core znver4: the
    same default build 2.8-4.4 ms from one session to the next); in one process the pair differs
    only in its kernels."""
    a, b = vm_timer(library, x), vm_timer(baseline, x)
    a(AB_CHUNK), b(AB_CHUNK)  # warm-up
    return lambda n: [tb / ta for ta, tb in turns(a, b, n)]


def turns(a, b, n: int, chunk: int = AB_CHUNK) -> list[tuple[float, float]]:
    """n pairs (median of a's `chunk` runs, median of b's) of timers `n -> n durations`, taken in
    turns, the order flipped every pair (whoever runs second does not always meet the first's
    after-effects)."""
    out = []
    for i in range(n):
        first, second = (a, b) if i % 2 == 0 else (b, a)
        t1, t2 = float(np.median(first(chunk))), float(np.median(second(chunk)))
        out.append((t1, t2) if i % 2 == 0 else (t2, t1))
    return out


def vm_output(executable, x: np.ndarray) -> np.ndarray:
    import tvm
    from tvm import relax

    return relax.VirtualMachine(executable, tvm.cpu())["main"](tvm.runtime.tensor(x)).numpy()
