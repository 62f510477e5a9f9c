"""A sweep's files: sweep.json (everything measured) and sweep.md (the table, the machine, the command)."""
from __future__ import annotations

import datetime
import json
import os
import platform
from pathlib import Path

from .output_paths import atomic_file, check_dir


def machine() -> dict:
    """CPU model (from /proc/cpuinfo), core count, OS and library versions of this run."""
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    info = {"cpu": cpu or platform.processor(), "cores": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(),
            "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    for mod in ("tvm", "onnxruntime", "torch"):
        try:
            info[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - optional; absent or broken import is just not reported
            pass
    return info


def _f(v, fmt):
    return "-" if v is None else fmt.format(v)


def markdown(result: dict, command: str) -> str:
    m, base, o = result["machine"], result["baseline"], result["options"]
    lines = [f"# Sweep of `{Path(o['model']).name}` ({o['mode']})", "",
             f"- command: `{command}`",
             f"- machine: {m['cpu']}, {m['cores']} cores, {m['platform']}; {m['date_utc']}",
             f"- versions: " + ", ".join(f"{k} {m[k]}" for k in ("tvm", "onnxruntime", "torch") if k in m),
             f"- test images: {o['test_images']}, calibration images: {o['calib_images']}, batch {o['batch']}, "
             f"latency = median of {o['runs']} runs",
             "- accuracy: the compiled x86 module against the labels; oracle: onnxruntime on the same quantized ONNX",
             "- weights: bytes the deployed kernels read at run time (compile report), compression against FP32",
             "- speed-up: FP32 onnxruntime latency / compiled latency, measured in this run on this machine", "",
             "| point | sparsity | accuracy | oracle | vs FP32 (points) | weight bytes | compression | latency (ms) | speed-up |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in [base] + result["rows"]:
        lines.append(f"| {r['point']} | {_f(r['sparsity'], '{:.1%}')} | {r['accuracy']:.2%} | "
                     f"{_f(r['oracle_accuracy'], '{:.2%}')} | {r['delta_points']:+.2f} | {r['weight_bytes']:,} | "
                     f"{r['compression']:.2f}x | {r['latency_ms']:.3f} | {r['speedup']:.2f}x |")
    auto = result.get("auto")
    if auto:
        lines += ["", "## Automatic operating point", "",
                  f"- method: {auto['method']}; budget {auto['budget_points']:g} points "
                  f"(accuracy >= {auto['accuracy_floor']:.2%})"]
        if "layer_sparsity" in auto:
            lines.append(f"- per-layer sparsity chosen: " +
                         ", ".join(f"{k} {v:g}" for k, v in auto["layer_sparsity"].items()) +
                         f" ({len(auto['candidates'])} candidates scored)")
            lines.append("- chosen on the test split's labels (no separate validation labels): "
                         "its accuracy is an optimistic estimate")
        if auto.get("point"):
            lines.append(f"- chosen: {auto['point']}")
        if not auto["feasible"]:
            lines.append("- no configuration is within the budget")
    qat = [r for r in result["rows"] if r["mode"] == "qat"]
    if qat:
        ep = o.get("epochs") or "the trainer's default"
        lines += ["", f"QAT points: one ternary model trained per target sparsity from the FP32 weights "
                      f"({qat[0].get('fp32_start', '')}; epochs: {ep}"
                      + (f", max_steps {o['max_steps']}" if o.get("max_steps") else "") + "); "
                      "training seconds: " + ", ".join(f"{r['point']} {r.get('train_seconds')}" for r in qat)]
    lines += ["", "![accuracy vs compression](accuracy_vs_compression.png)",
              "![accuracy vs speed-up](accuracy_vs_speedup.png)", ""]
    return "\n".join(lines)


def write(result: dict, out_dir, command: str) -> dict[str, Path]:
    """Write sweep.json, sweep.md and both plots into `out_dir` (each file atomically)."""
    from .sweep_plot import plot

    check_dir(out_dir, "--out")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = dict(result, machine=result.get("machine") or machine(), command=command)
    paths = {"json": out / "sweep.json", "md": out / "sweep.md"}
    with atomic_file(paths["json"]) as tmp:
        tmp.write_text(json.dumps(result, indent=2, default=str) + "\n")
    with atomic_file(paths["md"]) as tmp:
        tmp.write_text(markdown(result, command))
    paths.update(plot(result, out))
    return paths
