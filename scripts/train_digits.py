#!/usr/bin/env python3
"""Train DeepChip's SVHN ConvNet (adapted to 8x8) on scikit-learn's digits, FP32 and ternary, and
ship the result: tvm_deepchip/data/digits_fp32.onnx, digits_ternary_float.onnx, digits_test.npz,
digits_calib.npz and digits_train.json (accuracies measured in onnxruntime on the written files).

    python3 scripts/train_digits.py                 # the shipped files (about 2 minutes, 1 thread)
    python3 scripts/train_digits.py --out-dir /tmp/d --qat-epochs 30

With --schemes (default bwn,xnor) the FP32 net is also trained in those schemes through the
generic tvm_deepchip.train.prepare / export (binary weights; XNOR: binary activations too, conv1
and fc int8); their exported QDQ models' onnxruntime accuracies go into digits_train.json (the
models themselves are not shipped).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def machine() -> dict:
    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version()}


def onnx_layer_stats(model, ternary_names):
    from onnx import numpy_helper

    from tvm_deepchip.train.digits import ternary_values_per_channel

    out, zeros, total = {}, 0, 0
    for init in model.graph.initializer:
        layer = init.name.rsplit(".", 1)[0]
        if init.name.endswith(".weight") and layer in ternary_names:
            w = numpy_helper.to_array(init)
            nz = int((w == 0).sum())
            out[layer] = {"shape": list(w.shape), "sparsity": round(nz / w.size, 6),
                          "max_values_per_channel": ternary_values_per_channel(w)}
            zeros, total = zeros + nz, total + w.size
    return out, round(zeros / total, 6)


def qdq_accuracies(paths, data, sparsity: float) -> dict:
    """The deployable QDQ model (tvm_deepchip.quantize of the ternary float model, 8-bit
    activations, int8 first/last layers) and, for comparison, post-training ternarization of the
    FP32 model at the same sparsity, both in onnxruntime."""
    import tempfile

    import tvm_deepchip
    from tvm_deepchip.errors import DeepChipError
    from tvm_deepchip.train.digits import ort_accuracy

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for key, src, opts in (("ternary_qdq_onnxruntime", "ternary_float.onnx", {}),
                               ("fp32_post_training_ternary_qdq_onnxruntime", "fp32.onnx", {"sparsity": sparsity})):
            try:
                q = Path(tmp) / f"{key}.onnx"
                tvm_deepchip.quantize(str(paths[src]), q, calib=data["x_calib"], **opts)
                out[key] = ort_accuracy(str(q), data["x_test"], data["y_test"])
            except DeepChipError as err:  # the quantizer is another module: record, do not lose the training
                out[key] = f"quantize failed: {err}"
    return out


def scheme_accuracies(fp32, data, schemes, args, log) -> tuple[dict, dict]:
    """Each scheme trained from the FP32 weights with prepare/export; accuracy of the exported QDQ
    model in onnxruntime and of the torch model, and the training seconds."""
    import copy
    import tempfile

    import torch

    from tvm_deepchip.train import digits, export

    acc, secs = {}, {}
    for scheme in schemes:
        t0 = time.time()
        model = digits.train_scheme(copy.deepcopy(fp32), data, scheme, epochs=args.qat_epochs, lr=args.qat_lr,
                                    seed=args.seed, log=log)
        secs[f"{scheme}_s"] = time.time() - t0
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"digits_{scheme}.onnx"
            export(model, torch.from_numpy(data["x_calib"]), path, calib=data["x_calib"])
            acc[f"{scheme}_qdq_onnxruntime"] = digits.ort_accuracy(str(path), data["x_test"], data["y_test"])
        acc[f"{scheme}_torch"] = digits.accuracy(model, data["x_test"], data["y_test"])
    return acc, secs


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out-dir", default=str(ROOT / "tvm_deepchip" / "data"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fp32-epochs", type=int, default=120)
    ap.add_argument("--qat-epochs", type=int, default=120)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--qat-lr", type=float, default=1e-3)
    ap.add_argument("--sparsity", type=float, default=0.9, help="target zeros fraction of each ternary layer")
    ap.add_argument("--schemes", default="bwn,xnor",
                    help="also train these schemes (comma-separated: ternary, bwn, xnor; empty for none) via prepare/export")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads; 1 was faster than 2 on the shared 2-core machine (measured)")
    args = ap.parse_args(argv)

    import torch

    from tvm_deepchip.onnx_io import atomic_output, save_model
    from tvm_deepchip.train import digits, qat

    torch.set_num_threads(args.threads)
    out = Path(args.out_dir)
    t0 = time.time()
    fp32, tern, data, times = digits.train_both(
        args.seed, fp32_epochs=args.fp32_epochs, qat_epochs=args.qat_epochs, lr=args.lr,
        qat_lr=args.qat_lr, target_sparsity=args.sparsity,
        log=lambda s: print(s, file=sys.stderr, flush=True))
    m_fp32, m_tern = digits.to_onnx(fp32), digits.to_onnx(tern)
    ternary_names = [n.split(".")[-1] for n, _ in qat.ternary_layers(tern)]
    layers, overall = onnx_layer_stats(m_tern, ternary_names)
    for name, st in qat.layer_stats(tern).items():
        layers[name.split(".")[-1]].update(t=round(st["t"], 6), wp=st["wp"], wn=st["wn"])
    if any(st["max_values_per_channel"] > 3 for st in layers.values()):
        raise SystemExit(f"ternary export broken: {layers}")

    paths = {k: out / f"digits_{k}" for k in ("fp32.onnx", "ternary_float.onnx", "test.npz", "calib.npz", "train.json")}
    save_model(m_fp32, paths["fp32.onnx"])
    save_model(m_tern, paths["ternary_float.onnx"])
    with atomic_output(paths["test.npz"]) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, x=data["x_test"], y=data["y_test"])
    with atomic_output(paths["calib.npz"]) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, x=data["x_calib"])

    # accuracies on the files as written, in onnxruntime (the oracle)
    x, y = data["x_test"], data["y_test"]
    acc = {
        "fp32_onnxruntime": digits.ort_accuracy(str(paths["fp32.onnx"]), x, y),
        "ternary_float_onnxruntime": digits.ort_accuracy(str(paths["ternary_float.onnx"]), x, y),
        "fp32_torch": digits.accuracy(fp32, x, y),
        "ternary_torch_8bit_activations": digits.accuracy(tern, x, y),
    }
    acc.update(qdq_accuracies(paths, data, args.sparsity))
    acc["ternary_minus_fp32_points"] = round(100 * (acc["ternary_float_onnxruntime"] - acc["fp32_onnxruntime"]), 4)
    schemes = [s for s in args.schemes.split(",") if s]
    more, secs = scheme_accuracies(fp32, data, schemes, args, lambda s: print(s, file=sys.stderr, flush=True))
    acc.update(more)
    times.update(secs)
    report = {
        "model": "DeepChip SVHN ConvNet adapted to 8x8 digits (tvm_deepchip/train/digits.py)",
        "data": {"source": "sklearn.datasets.load_digits", "seed": args.seed, "train": len(data["y_train"]),
                 "calib": len(data["y_calib"]), "test": len(y), "input": "[N,1,8,8] float32 in [0,1] (pixel/16)"},
        "test_accuracy": acc,
        "ternary_layers": layers,
        "ternary_sparsity_overall": overall,
        "hyperparameters": {k: getattr(args, k) for k in ("fp32_epochs", "qat_epochs", "lr", "qat_lr", "sparsity", "threads",
                                                            "schemes")},
        "train_seconds": {k: round(v, 1) for k, v in times.items()} | {"total": round(time.time() - t0, 1)},
        "torch": torch.__version__, "onnx_opset": 17, "machine": machine(),
        "files_bytes": {p.name: p.stat().st_size for k, p in paths.items() if k != "train.json"},
    }
    with atomic_output(paths["train.json"]) as tmp:
        tmp.write_text(json.dumps(report, indent=2) + "\n")
    for p in paths.values():
        os.chmod(p, 0o644)  # atomic_output's temporary files are private (0600)
    print(json.dumps({"test_accuracy": acc, "ternary_sparsity_overall": overall,
                      "files_bytes": report["files_bytes"]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
