"""`deepchip sweep MODEL.onnx --calib C.npz --test T.npz [--thresholds ..|--sparsities ..] [--mode ptq|qat]
[--auto --budget B] --out DIR`: the accuracy / compression / speed trade-off, as a table and plots.

Writes DIR/sweep.md, DIR/sweep.json, DIR/accuracy_vs_compression.png and DIR/accuracy_vs_speedup.png;
one progress line per measured point on stderr.
"""
from __future__ import annotations

import shlex
import sys
from pathlib import Path

from ..errors import InputError
from ..output_paths import check_dir


def _fractions(text: str, what: str) -> list[float]:
    try:
        vals = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InputError(f"--{what} {text!r}: expected comma-separated numbers (e.g. 0.5,0.9)") from None
    if not vals:
        raise InputError(f"--{what} {text!r}: empty list")
    return vals


def register(sub) -> None:
    p = sub.add_parser("sweep", help="accuracy vs compression vs speed over thresholds / sparsities (table + plots)")
    p.add_argument("model", help="float ONNX model (qat mode: the digits FP32 model, e.g. tvm_deepchip/data/digits_fp32.onnx)")
    p.add_argument("--calib", required=True, help="calibration images .npz (array x [N, ...])")
    p.add_argument("--test", required=True, help="test images and labels .npz (arrays x [N, ...], y [N])")
    grid = p.add_mutually_exclusive_group()
    grid.add_argument("--thresholds", help="comma-separated thresholds t (zeros where |w| <= t*max|W|), ptq only")
    grid.add_argument("--sparsities", help="comma-separated target sparsities, e.g. 0.8,0.9,0.95")
    p.add_argument("--mode", choices=["ptq", "qat"], default="ptq",
                   help="ptq: post-training quantization per point (any model); qat: train one ternary digits "
                        "model per sparsity (needs torch)")
    p.add_argument("--auto", action="store_true",
                   help="also pick the most compressed operating point within --budget (ptq: greedy per-layer "
                        "sparsity scored by the onnxruntime oracle; qat: best grid point)")
    p.add_argument("--budget", type=float, default=0.5, help="accuracy points below FP32 allowed by --auto (default 0.5)")
    p.add_argument("--steps", help="sparsity steps of the --auto search (default 0.5,0.6,0.7,0.8,0.85,0.9,0.95)")
    p.add_argument("--per-channel", action="store_true", help="ptq: one (Wp, Wn) pair per output channel")
    p.add_argument("--epochs", type=int, help="qat: training epochs per point (default: the trainer's)")
    p.add_argument("--fp32-start", choices=["auto", "retrain", "onnx"], default="auto",
                   help="qat: start from the trainer's FP32 run if it reproduces MODEL's weights (auto, default; "
                        "retrain = must), or from MODEL read back (onnx)")
    p.add_argument("--max-steps", type=int, help="qat: stop each training after this many steps (smoke runs)")
    p.add_argument("--batch", type=int, default=1, help="batch to compile and time when the model's is dynamic")
    p.add_argument("--runs", type=int, default=200, help="timed runs per point (median reported)")
    p.add_argument("--tuning-log", default="auto", help="as in `deepchip compile` ('none' = default schedules)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output directory")
    p.set_defaults(func=run)


def _command(args) -> str:
    """The command line as typed (when run as `deepchip`), else rebuilt from the parsed options."""
    if "sweep" in sys.argv[1:] and Path(sys.argv[0]).name in ("deepchip", "__main__.py"):
        return "deepchip " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    parts = ["deepchip", "sweep", args.model]
    for opt in ("calib", "test", "thresholds", "sparsities", "mode", "budget", "steps", "epochs", "max_steps",
                "batch", "runs", "tuning_log", "seed", "fp32_start", "out"):
        v = getattr(args, opt)
        if v is not None and not (opt == "budget" and not args.auto) and not (opt == "fp32_start" and v == "auto"):
            parts += ["--" + opt.replace("_", "-"), str(v)]
    parts += [f"--{f.replace('_', '-')}" for f in ("auto", "per_channel") if getattr(args, f)]
    return " ".join(shlex.quote(p) for p in parts)


def run(args) -> int:
    from ..sweep import sweep
    from ..sweep_report import write

    thresholds = _fractions(args.thresholds, "thresholds") if args.thresholds else None
    sparsities = _fractions(args.sparsities, "sparsities") if args.sparsities else None
    if not (thresholds or sparsities or args.auto):
        raise InputError("give --thresholds, --sparsities or --auto")
    if args.budget < 0:
        raise InputError(f"--budget {args.budget}: expected accuracy points >= 0")
    steps = _fractions(args.steps, "steps") if args.steps else None
    check_dir(args.out, "--out")  # before the work, not after it
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    result = sweep(args.model, args.calib, args.test, mode=args.mode, thresholds=thresholds, sparsities=sparsities,
                   auto=args.auto, budget=args.budget, batch=args.batch, runs=args.runs,
                   tuning_log=None if args.tuning_log == "none" else args.tuning_log, per_channel=args.per_channel,
                   epochs=args.epochs, max_steps=args.max_steps, steps=steps, seed=args.seed,
                   fp32_start=args.fp32_start, log=log)
    paths = write(result, args.out, _command(args))
    for p in paths.values():
        print(f"wrote {p}")
    return 0
