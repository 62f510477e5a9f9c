"""`deepchip quantize IN.onnx -o OUT.onnx [--scheme ternary|bwn|xnor]`: float ONNX -> DeepChip quantized
(QDQ) ONNX, in the post-training form of a scheme (weights already binary/ternary are kept)."""
from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from ..output_paths import atomic_file, check_file


def register(sub) -> None:
    p = sub.add_parser("quantize", help="quantize a float ONNX model to ternary/int8 weights and 8-bit activations")
    p.add_argument("model", help="float ONNX model")
    p.add_argument("-o", "--output", required=True, help="quantized ONNX model to write")
    p.add_argument("--scheme", default="ternary", choices=["ternary", "bwn", "xnor"],
                   help="inner layers: ternary (default); bwn: binary weights {-a[c], +a[c]}, a[c] = mean|W[c]|; "
                        "xnor: binary weights and binary inputs Where(x >= 0, 1, -1). Weights already "
                        "binary or ternary, and inputs already binarized, are kept")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--threshold", type=float, default=None,
                   help="zero where |w| <= T*max|W| (default 0.05, the DeepChip paper's value)")
    g.add_argument("--sparsity", type=float, default=None,
                   help="instead pick each layer's threshold so that a fraction S in (0, 1) of weights is zero "
                        "(S = 0 would leave them binary, which is refused)")
    p.add_argument("--per-channel", action="store_true", help="one threshold and (Wp, Wn) pair per output channel")
    p.add_argument("--first-last", default="int8", choices=["int8", "float", "ternary"],
                   help="weights of the first and last layers (default: int8 per channel)")
    p.add_argument("--calib", help="calibration images (.npz: the array named like the model input, or 'x', "
                                   "or the first one; or .npy), float [N, C, H, W]")
    p.add_argument("--calib-method", default="minmax", choices=["minmax", "percentile"])
    p.add_argument("--percentile", type=float, default=99.99, help="for --calib-method percentile")
    p.add_argument("--seed", type=int, default=0, help="seed of the random calibration images without --calib")
    p.add_argument("--report", help="also write the per-layer report as JSON to this file")
    p.set_defaults(func=run)


def run(args) -> int:
    check_file(args.output, "-o")
    if args.report:
        check_file(args.report, "--report")
    from ..quantizer import quantize

    if args.scheme != "ternary" and (args.threshold is not None or args.sparsity is not None):
        raise InputError(f"--{'threshold' if args.threshold is not None else 'sparsity'} sets ternary zeros; "
                         f"--scheme {args.scheme} has binary weights (no zeros)")
    if Path(args.output).resolve() == Path(args.model).resolve():
        raise InputError(f"-o {args.output}: the output would overwrite the input model")
    _, report = quantize(args.model, args.output, threshold=0.05 if args.threshold is None else args.threshold,
                         sparsity=args.sparsity, per_channel=args.per_channel, first_last=args.first_last,
                         calib=args.calib, calib_method=args.calib_method, percentile=args.percentile, seed=args.seed,
                         scheme=args.scheme)
    print(report.format())
    print(f"wrote {args.output} ({Path(args.output).stat().st_size} bytes)")
    if args.report:
        with atomic_file(args.report) as tmp:
            Path(tmp).write_text(report.to_json())
        print(f"wrote {args.report}")
    return 0
