"""`deepchip tune Q.onnx --target x86 [--trials N] [--tracker HOST:PORT --key KEY]`."""
from __future__ import annotations

from ..formats import AUTO, DEFAULT_TERNARY, KERNEL_FORMATS


def register(sub) -> None:
    p = sub.add_parser("tune", help="tune every kernel of a model with MetaSchedule (XGBoost cost model)")
    p.add_argument("model", help="quantized ONNX model")
    p.add_argument("--target", default="x86", help="target preset (x86 | aarch64)")
    p.add_argument("--target-json", help="any TVM target dict as JSON")
    p.add_argument("--trials", type=int, default=64, help="total measured trials over all tasks")
    p.add_argument("--trials-per-task", type=int, help="cap per task")
    p.add_argument("--work-dir", help="database directory (default: tuning_logs/<target>-<cpu>/); "
                                      "re-running with the same directory resumes")
    p.add_argument("--ternary-format", default=DEFAULT_TERNARY, choices=(AUTO, *KERNEL_FORMATS))
    p.add_argument("--tracker", help="RPC tracker HOST:PORT for remote devices")
    p.add_argument("--key", help="device key at the tracker (e.g. aarch64)")
    p.add_argument("--timeout", type=int, default=30, help="seconds per candidate run")
    p.add_argument("--no-format-choice", action="store_true",
                   help="skip timing sparse/packed/int8 per ternary layer (x86 only)")
    p.add_argument("--input-shape", action="append", default=[], metavar="NAME:D0,D1,..",
                   help="static shape of a dynamic input, e.g. input:1,1,8,8")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..tuning import tune
    from .compile import parse_shapes

    out = tune(
        args.model,
        args.target,
        target_json=args.target_json,
        work_dir=args.work_dir,
        trials=args.trials,
        trials_per_task=args.trials_per_task,
        default_ternary=args.ternary_format,
        tracker=args.tracker,
        key=args.key,
        timeout=args.timeout,
        choose_formats=not args.no_format_choice,
        input_shapes=parse_shapes(args.input_shape),
    )
    print(f"tuning database: {out}")
    return 0
