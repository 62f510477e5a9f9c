"""`deepchip models list` and `deepchip models export NAME -o F.onnx`: the reference networks."""
from __future__ import annotations

from ..errors import InputError


def register(sub) -> None:
    p = sub.add_parser("models", help="list or export the reference networks (random weights from a seed)")
    msub = p.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    msub.add_parser("list", help="names, input shapes and parameter counts")
    e = msub.add_parser("export", help="write one network as float ONNX")
    e.add_argument("name", help="network name (see `deepchip models list`)")
    e.add_argument("-o", "--output", required=True, help="ONNX file to write")
    e.add_argument("--batch", type=int, default=1, help="batch size of the input (default 1)")
    e.add_argument("--seed", type=int, default=0, help="seed of the random weights (default 0)")
    p.set_defaults(func=run)


def _shape(model):
    return [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]


def run(args) -> int:
    from .. import models
    from ..onnx_io import save_model
    from ..output_paths import check_file

    if args.models_command == "list":
        for name, build in models.MODELS.items():
            doc = (build.__doc__ or "").strip().splitlines()[0].split(":")[0]
            print(f"{name:14s} {doc}")
        return 0
    if args.name not in models.MODELS:
        raise InputError(f"unknown network {args.name!r}; known: {', '.join(models.MODELS)}")
    if args.batch < 1:
        raise InputError(f"--batch {args.batch}: expected a positive batch size")
    check_file(args.output, "-o")
    model = models.MODELS[args.name](batch=args.batch, seed=args.seed)
    save_model(model, args.output)
    print(f"wrote {args.output}: {args.name}, input {_shape(model)}, {models.param_count(model)} parameters")
    return 0
