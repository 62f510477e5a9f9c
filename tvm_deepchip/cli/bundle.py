"""`deepchip bundle model.so -o DIR [--arch aarch64]`: runtime-only deployment directory."""
from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser("bundle", help="write model + TVM runtime libraries + runner for a board (no compiler)")
    p.add_argument("model", help="compiled model library (.so from `deepchip compile`)")
    p.add_argument("-o", "--output", required=True, help="bundle directory to write (replaced if it is a bundle)")
    p.add_argument("--arch", default="aarch64", choices=["aarch64", "x86_64"],
                   help="architecture of the board (must match the .so; default aarch64)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..bundle import bundle
    from ..output_paths import check_new_dir

    check_new_dir(args.output, "-o")
    out = bundle(args.model, args.output, arch=args.arch)
    manifest = json.loads((out / "manifest.json").read_text())
    print(f"wrote {out} ({manifest['size_bytes'] / 1e6:.1f} MB, {manifest['arch']})")
    print(f"on the board: python3 {out.name}/run.py --input x.npy -o y.npy   (needs python3 + numpy only)")
    return 0
