"""`deepchip compile Q.onnx -o model.so --target x86|aarch64`."""
from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from ..formats import DEFAULT_CHOICES, DEFAULT_TERNARY
from ..output_paths import atomic_file, check_file


def _shape_arg(text: str) -> dict:
    """NAME:1,3,32,32 -> {"NAME": (1, 3, 32, 32)}"""
    try:
        name, dims = text.rsplit(":", 1)
        return {name: tuple(int(d) for d in dims.split(","))}
    except ValueError:
        raise InputError(f"--input-shape {text!r}: expected NAME:D0,D1,... (e.g. input:1,3,32,32)") from None


def parse_shapes(texts) -> dict | None:
    """Repeated --input-shape NAME:D0,D1,.. options -> {NAME: shape} (None if none given)."""
    shapes = {}
    for text in texts:
        shapes.update(_shape_arg(text))
    return shapes or None


def _format_arg(text: str) -> tuple[str, str]:
    from ..formats import CHOICES as TERNARY_FORMATS

    layer, eq, fmt = text.rpartition("=")
    if not eq or not layer:
        raise InputError(f"--format {text!r}: expected LAYER={'|'.join(TERNARY_FORMATS)}")
    if fmt not in TERNARY_FORMATS:
        raise InputError(f"--format {text!r}: unknown format {fmt!r}; choose from {', '.join(TERNARY_FORMATS)}")
    return layer, fmt


def register(sub) -> None:
    p = sub.add_parser("compile", help="compile a quantized ONNX model into a deployable .so")
    p.add_argument("model", help="quantized ONNX model (output of `deepchip quantize`)")
    p.add_argument("-o", "--output", required=True, help="shared library to write")
    p.add_argument("--target", default="x86", help="target preset: x86 (this machine's CPU) or aarch64")
    p.add_argument("--target-json", help="any TVM target dict as JSON (overrides the preset's target)")
    p.add_argument("--ternary-format", default=DEFAULT_TERNARY, choices=DEFAULT_CHOICES,
                   help=f"kernel format of ternary layers (default: {DEFAULT_TERNARY}: delta lists or index rows "
                        "by each layer's shape)")
    p.add_argument("--format", action="append", default=[], metavar="LAYER=FMT",
                   help="force one layer's format (repeatable)")
    p.add_argument("--input-shape", action="append", default=[], metavar="NAME:D0,D1,..",
                   help="static shape for a dynamic input")
    p.add_argument("--tuning-log", default="auto",
                   help="MetaSchedule database dir; 'auto' = committed log for the target; 'none' = defaults")
    p.add_argument("--report", help="write the compile report as JSON to this file")
    p.set_defaults(func=run)


def run(args) -> int:
    check_file(args.output, "-o")  # both outputs before the build: it takes a while
    if args.report:
        check_file(args.report, "--report")
    from ..compiler import compile as compile_model

    shapes = parse_shapes(args.input_shape)
    formats = dict(_format_arg(f) for f in args.format)
    log = None if args.tuning_log == "none" else args.tuning_log
    compiled = compile_model(
        args.model,
        args.target,
        target_json=args.target_json,
        formats=formats,
        default_ternary=args.ternary_format,
        input_shapes=shapes,
        tuning_log=log,
        output=args.output,
    )
    print(compiled.report.format())
    print(f"wrote {args.output} ({Path(args.output).stat().st_size} bytes)")
    if args.report:
        with atomic_file(args.report) as tmp:
            tmp.write_text(compiled.report.to_json())
    return 0
