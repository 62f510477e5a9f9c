#!/usr/bin/env python3
"""Weight memory of the three reference networks, FP32 vs DeepChip ternary, at 90% and 95% zeros,
next to the paper's ratios (43x / 22x / 10x and 88x / 29x / 13x for SVHN ConvNet / ResNet-44 /
AlexNet). Writes a markdown table to stdout and to --out (and the numbers to --json).

    python3 scripts/compression_table.py --out compression.md --json compression.json

Per network (tvm_deepchip.models, BatchNorm folded as the quantizer does): the first and the last
layer stay float (4 bytes a weight, as in the paper); every other Conv/Gemm is ternarized per
layer at the given sparsity with the quantizer's own `ternarize`. Every column is counted by
tvm_deepchip/weight_sizes.py, the functions the kernels and the quantizer's report count with:
  - run-time bytes the deployed kernels read: `default` = each layer in the format the compiler
    runs it in without a choice (tvm_deepchip/format_rule.py: delta lists or index rows by the
    layer's shape, for the network's input size); `delta` = every channel's +1
    and -1 tap lists as 8-bit gaps (primitives/delta_lists.py), packed by the primitive that
    reads them (ternary_conv2d_delta for the layer's kernel, stride and input size: a conv with
    one output position over its whole input takes the pointwise form; ternary_dense_delta);
    `sparse` = the +1 and -1 tap lists cut into
    balanced rows with their row tables (primitives/sparse_rows.py; uint16 offsets where they
    fit), as primitives.ternary_dense_sparse packs them (a conv's offsets index its flat input
    instead, same count, int32 only when the image exceeds 64K codes); `packed` = two uint32
    bit-planes per output channel (2 bits a weight), as primitives.ternary_dense_packed packs
    them (a strided conv's phase-split taps are more); `smallest` = the smaller of the
    three per layer;
  - stored bytes: the smallest tvm_deepchip.encodings encoding of each layer's signs, plus its
    Wp and Wn as float32; and the Shannon (entropy) bound of those signs for comparison.
Only weights are counted (biases and per-channel requantization constants are the same few
values per channel in every form and are left out, like the paper's weight memory). Weights are
the builders' seeded random ones; the sizes depend on the sign pattern only through the
per-channel counts, so trained weights give the same picture.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from tvm_deepchip import weight_sizes

PAPER = {"svhn_convnet": {0.9: 43, 0.95: 88}, "resnet44": {0.9: 22, 0.95: 29}, "alexnet": {0.9: 10, 0.95: 13}}
DELTA = ("index_fixed", "index_rice", "run_rice", "bitmap_sign", "packed2")
SCALES_BYTES = 8  # a stored ternary layer's Wp and Wn, float32


def weight_layers(model):
    """[(name, op, W as [Co, K...], conv attributes and input shape)] of Conv/Gemm layers in
    graph order.

    BatchNorm is not folded first: as in training, the threshold applies to the conv weight before
    BN's per-channel scale (folding BN afterwards scales each channel but keeps its zeros). Folding
    first and then thresholding per layer would zero whole channels with a small BN scale and keep
    dense ones with a large scale, which pads the offset lists of the sparse kernels."""
    import onnx
    from onnx import numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    inferred = onnx.shape_inference.infer_shapes(model).graph
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in list(inferred.value_info) + list(inferred.input)}
    out = []
    for node in model.graph.node:
        if node.op_type in ("Conv", "Gemm") and len(node.input) > 1 and node.input[1] in inits:
            w = numpy_helper.to_array(inits[node.input[1]])
            if node.op_type == "Gemm" and not any(a.name == "transB" and a.i for a in node.attribute):
                w = w.T
            attrs = {a.name: list(a.ints) for a in node.attribute if a.ints}
            out.append((node.name or node.output[0], node.op_type, w,
                        {"strides": attrs.get("strides", [1, 1]), "pads": attrs.get("pads", [0, 0, 0, 0]),
                         "in_shape": shapes.get(node.input[0])}))
    return out


def runtime_sparse_bytes(signs2: np.ndarray) -> int:
    """The sparse kernels' tables of [Co, K] signs, as ternary_dense_sparse packs them."""
    from tvm_deepchip.primitives import ternary_dense_sparse

    return ternary_dense_sparse.pack_signs(signs2).nbytes()


def runtime_delta_bytes(op: str, signs: np.ndarray, conv: dict) -> int:
    """The delta lists of a layer's signs, as the primitive that reads them packs them."""
    from types import SimpleNamespace

    from tvm_deepchip.primitives import ternary_conv2d_delta, ternary_dense_delta

    if op == "Gemm" or signs.ndim == 2:
        return ternary_dense_delta.pack(SimpleNamespace(codes=signs.reshape(signs.shape[0], -1))).nbytes()
    layer, shape = _conv_layer(signs, conv)
    return ternary_conv2d_delta.pack(layer, ternary_conv2d_delta.geometry(layer, shape)).nbytes()


def default_bytes(op: str, signs: np.ndarray, conv: dict, delta: int, sparse: int) -> int:
    """What the compiler's default (format_rule) reads of this layer at run time: its delta lists
    (`delta` bytes), its index rows (`sparse`), or the dot form's two planes. (On the layer as
    ONNX holds it: the compiler first crops taps that read only padding, dead_taps.py, which the
    paper's networks at their input sizes do not have.)"""
    from types import SimpleNamespace

    from tvm_deepchip.format_rule import default_ternary
    from tvm_deepchip.formats import Format
    from tvm_deepchip.primitives import ternary_dense_dot

    s2 = signs.reshape(signs.shape[0], -1)
    if op == "Gemm" or signs.ndim == 2:
        layer, shape = SimpleNamespace(op="dense", codes=s2, out_channels=s2.shape[0]), None
    else:
        layer, shape = _conv_layer(signs, conv)
    fmt = default_ternary(layer, shape)
    if fmt == Format.DOT:
        return ternary_dense_dot.pack(SimpleNamespace(codes=s2)).nbytes()
    return delta if fmt == Format.DELTA else sparse


def _conv_layer(signs: np.ndarray, conv: dict):
    """(a layer the primitives' geometry reads, its input shape) of a conv's signs."""
    from types import SimpleNamespace

    pads = conv["pads"]  # ONNX: top, left, bottom, right
    layer = SimpleNamespace(op="conv2d", codes=signs, strides=conv["strides"], padding=(pads[0], pads[1], pads[2], pads[3]),
                            name="", out_channels=signs.shape[0])
    shape = conv["in_shape"]
    if not shape or not all(shape[1:]):  # no inferred input size: the spatial form
        shape = [1, signs.shape[1], 64, 64]
    return layer, [1, *shape[1:]]


def layer_rows(name: str, sparsity: float, first_last: str = "float"):
    from tvm_deepchip import models

    return model_rows(models.MODELS[name](batch=1, seed=0), sparsity, first_last)


def model_rows(model, sparsity: float, first_last: str = "float"):
    """One row per Conv/Gemm layer of `model`: its bytes in every column (see the docstring)."""
    from tvm_deepchip import encodings
    from tvm_deepchip.ternary import ternarize

    layers = weight_layers(model)
    rows = []
    for i, (lname, op, w, conv) in enumerate(layers):
        edge = i in (0, len(layers) - 1)
        row = {"layer": lname, "op": op, "shape": list(w.shape), "weights": int(w.size), "fp32": 4 * int(w.size)}
        if edge:
            b = w.size * (4 if first_last == "float" else 1)
            row.update(kind=first_last, default=b, delta=b, sparse=b, packed=b, smallest=b, stored=b, entropy=b)
        else:
            t = ternarize(w, sparsity=sparsity)
            s2 = t.signs.reshape(w.shape[0], -1)
            sizes = {e: weight_sizes.stored_bytes(t.signs, e) for e in DELTA}
            best = min(sizes, key=sizes.get)
            planes = weight_sizes.bit_words_bytes if t.signs.ndim == 2 else weight_sizes.bit_planes_bytes  # dense: bit_dot's words
            sp, pk = runtime_sparse_bytes(s2), planes(*s2.shape)
            dl = runtime_delta_bytes(op, t.signs, conv)
            row.update(kind="ternary", sparsity=t.sparsity, delta=dl, sparse=sp, packed=pk, smallest=min(dl, sp, pk),
                       default=default_bytes(op, t.signs, conv, dl, sp),
                       stored=sizes[best] + SCALES_BYTES, encoding=best, encodings=sizes,
                       entropy=encodings.entropy_bound_bits(t.signs) * w.size / 8 + SCALES_BYTES)
        rows.append(row)
    return rows


def vs_entropy(layers, key: str = "delta") -> float:
    """The ternary layers' run-time bytes in column `key` against the entropy bound of their signs
    (their stored scales left out: the kernels' epilogue holds them)."""
    tern = [x for x in layers if x["kind"] == "ternary"]
    return sum(x[key] for x in tern) / sum(x["entropy"] - SCALES_BYTES for x in tern)


def fmt_bytes(b: float) -> str:
    for unit, div in (("MB", 1e6), ("KB", 1e3)):
        if b >= div:
            return f"{b / div:.2f} {unit}"
    return f"{b:.0f} B"


def table(results: list[dict]) -> str:
    head = ("| network | zeros | FP32 weights | run-time default kernels | default / entropy "
            "| run-time delta lists | delta / entropy "
            "| run-time sparse (index rows) | run-time packed (2-bit) "
            "| run-time smallest per layer | stored (best encoding) | entropy bound | paper |")
    lines = [head, "|" + "---|" * 13]
    for r in results:
        t, f = r["totals"], r["totals"]["fp32"]
        cell = lambda k: f"{fmt_bytes(t[k])} ({f / t[k]:.1f}x)"  # noqa: E731
        lines.append(f"| {r['model']} | {r['sparsity']:.0%} | {fmt_bytes(f)} | {cell('default')} | {t['default_vs_entropy']:.2f}x "
                     f"| {cell('delta')} | {t['delta_vs_entropy']:.2f}x "
                     f"| {cell('sparse')} | {cell('packed')} "
                     f"| {cell('smallest')} | {cell('stored')} | {cell('entropy')} | {r['paper']}x |")
    lines.append("")
    lines.append("Ratio = FP32 weight bytes / bytes of the column. First and last layers float (4 B a weight) "
                 "in every column; their share caps the ratio at (default / entropy, delta / entropy: the ternary "
                 "layers' run-time bytes in that column against the entropy bound of their signs, scales left out; "
                 "default: each layer in the format tvm_deepchip/format_rule.py picks for it):")
    seen = set()
    for r in results:
        if r["model"] not in seen:
            seen.add(r["model"])
            edge = sum(x["fp32"] for x in r["layers"] if x["kind"] != "ternary")
            lines.append(f"- {r['model']}: {r['params']:,} weights, first+last {edge / r['totals']['fp32']:.1%} "
                         f"of FP32 -> at most {r['totals']['fp32'] / edge:.0f}x")
    encs = sorted({x.get("encoding") for r in results for x in r["layers"] if x.get("encoding")})
    lines.append(f"- stored encodings chosen (tvm_deepchip/encodings.py): {', '.join(encs)}")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=list(PAPER))
    ap.add_argument("--sparsity", nargs="+", type=float, default=[0.9, 0.95])
    ap.add_argument("--first-last", choices=("float", "int8"), default="float",
                    help="precision of the first and last layers (the paper: float)")
    ap.add_argument("--out", help="also write the markdown table here")
    ap.add_argument("--json", help="write per-layer numbers here")
    args = ap.parse_args(argv)

    from tvm_deepchip.onnx_io import atomic_output

    results = []
    for name in args.models:
        for s in args.sparsity:
            t0 = time.time()
            layers = layer_rows(name, s, args.first_last)
            keys = ("fp32", "default", "delta", "sparse", "packed", "smallest", "stored", "entropy")
            totals = {k: sum(x[k] for x in layers) for k in keys}
            totals["delta_vs_entropy"], totals["default_vs_entropy"] = vs_entropy(layers), vs_entropy(layers, "default")
            results.append({"model": name, "sparsity": s, "paper": PAPER.get(name, {}).get(s, "-"),
                            "params": sum(x["weights"] for x in layers), "totals": totals, "layers": layers})
            print(f"{name} at {s:.0%}: {time.time() - t0:.1f} s", file=sys.stderr, flush=True)
    text = table(results)
    sys.stdout.write(text)
    if args.out:
        with atomic_output(args.out) as tmp:
            Path(tmp).write_text(text)
    if args.json:
        with atomic_output(args.json) as tmp:
            Path(tmp).write_text(json.dumps(results, indent=1, default=float) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
