#!/usr/bin/env python3
"""The bundled digits model in the binary schemes, through the compiler: accuracy in onnxruntime and
through the compiled x86 .so (each x86 ISA class this CPU runs), on the same exported ONNX.

    python3 scripts/binary_digits.py                       # docs/binary/digits.json (about 3 minutes)
    python3 scripts/binary_digits.py --schemes xnor --epochs 10 --out /tmp/d.json

Each scheme (bwn: binary weights, 8-bit activations; xnor: binary weights and activations, conv1 and
fc int8) is trained from the shipped FP32 weights (tvm_deepchip/data/digits_fp32.onnx) with
tvm_deepchip.train.prepare / export, as scripts/train_digits.py does; the exported model is compiled
for each class and run on the 450 test images. The compiled model must reach exactly onnxruntime's
accuracy (its integer layers are exact; an XNOR layer's threshold is exact where onnxruntime's float
sum rounds, so a value within that rounding of a threshold could differ: the count is recorded).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))


def compiled_predictions(model_path: Path, x: np.ndarray, cls: str) -> tuple:
    import onnx
    import tvm

    import tvm_deepchip
    from tvm_deepchip import isa

    model = onnx.load(str(model_path))
    os.environ[isa.X86_SWITCH] = cls
    try:
        compiled = tvm_deepchip.compile(model, "x86", input_shapes={model.graph.input[0].name: list(x.shape)},
                                        tuning_log=None)
    finally:
        os.environ.pop(isa.X86_SWITCH, None)
    vm = tvm.relax.VirtualMachine(compiled.executable, tvm.cpu())
    return vm["main"](tvm.runtime.tensor(x)).numpy(), compiled.report


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--schemes", nargs="+", default=["bwn", "xnor"], choices=["bwn", "xnor"])
    ap.add_argument("--epochs", type=int, default=120, help="training epochs per scheme (train_digits.py's default)")
    ap.add_argument("--out", default=str(ROOT / "docs" / "binary" / "digits.json"))
    args = ap.parse_args(argv)
    if not Path(args.out).parent.is_dir():
        ap.error(f"--out {args.out}: no directory {Path(args.out).parent}")
    import torch

    from bench import default_classes, machine
    from tvm_deepchip import oracle
    from tvm_deepchip.onnx_io import atomic_output
    from tvm_deepchip.train import digits, export

    torch.set_num_threads(1)
    data = digits.load_split(0)
    x, y = data["x_test"], data["y_test"]
    fp32_path = ROOT / "tvm_deepchip" / "data" / "digits_fp32.onnx"
    result = {"command": " ".join(["python3 scripts/binary_digits.py", *(argv or sys.argv[1:])]),
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine(),
              "test_images": int(len(y)), "schemes": {}}
    for scheme in args.schemes:
        t0 = time.time()
        model = digits.train_scheme(digits.fp32_from_onnx(str(fp32_path), data["x_train"]), data, scheme,
                                    epochs=args.epochs, seed=0, log=lambda s: print(s, file=sys.stderr, flush=True))
        row = {"train_s": round(time.time() - t0, 1)}
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"digits_{scheme}.onnx"
            export(model, torch.from_numpy(data["x_calib"]), path, calib=data["x_calib"])
            ref = oracle.run(str(path), x)
            row["onnxruntime"] = float(np.mean(ref.argmax(1) == y))
            for cls in default_classes():
                ours, report = compiled_predictions(path, x, cls)
                row[f"compiled_{cls}"] = float(np.mean(ours.argmax(1) == y))
                row[f"argmax_differs_{cls}"] = int(np.sum(ours.argmax(1) != ref.argmax(1)))
                row["primitives"] = sorted({r["primitive"] for r in report.layers})
        print(f"[binary_digits] {scheme}: {row}", file=sys.stderr, flush=True)
        result["schemes"][scheme] = row
    with atomic_output(Path(args.out)) as tmp:
        tmp.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["schemes"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
