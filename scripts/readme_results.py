#!/usr/bin/env python3
"""Write the measured results into README.md and BENCHMARKS.md (between marker comments).

Nothing here measures or types a number: it reads what the measuring scripts wrote
    BENCHMARKS.json            scripts/bench.py            speed against the peers
    docs/sweep/sweep.json      scripts/sweep_digits.sh     accuracy vs compression vs speed (real data)
    docs/compression.json      scripts/compression_table.py weight memory against the paper
    tvm_deepchip/data/digits_train.json  scripts/train_digits.py  the bundled model's accuracy
    docs/binary/bench.json     scripts/bench.py --schemes xnor bwn --out docs/binary/bench.md   binary networks' speed
    docs/binary/digits.json    scripts/binary_digits.py    the digits model's binary schemes, compiled
and formats them. Re-run it after any of those:  python3 scripts/readme_results.py
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- results:begin (scripts/readme_results.py) -->", "<!-- results:end -->"


def _load(rel):
    path = ROOT / rel
    return json.loads(path.read_text()) if path.is_file() else None


def _machine(m) -> str:
    if isinstance(m, dict):
        return f"{m.get('cpu', '?')}, {m.get('cores', '?')} cores, {m.get('date_utc', '')}"
    return str(m)


def accuracy_section(train, sweep) -> list[str]:
    if not (train and sweep):
        return []
    acc = train["test_accuracy"]
    lines = [
        "### Accuracy on real data (bundled digits model)",
        "",
        f"scikit-learn's handwritten digits ({train['data']['test']} test images), DeepChip's SVHN ConvNet "
        "adapted to 8x8 inputs, trained in FP32 and with DeepChip's ternary training quantizer "
        "(`scripts/train_digits.py`, recorded in `tvm_deepchip/data/digits_train.json`):",
        "",
        "| model | test accuracy |",
        "| --- | --- |",
        f"| FP32 (onnxruntime) | {acc['fp32_onnxruntime']:.2%} |",
        f"| ternary, 90% zeros, 8-bit activations, compiled x86 .so | {acc['ternary_qdq_onnxruntime']:.2%} |",
        f"| FP32 ternarized after training (no retraining) | {acc['fp32_post_training_ternary_qdq_onnxruntime']:.2%} |",
    ]
    titles = {"bwn": "BWN (binary weights, 8-bit activations; `train.prepare`/`export`), onnxruntime",
              "xnor": "BNN / XNOR-Net (binary weights and activations, first and last int8), onnxruntime"}
    lines += [f"| {title} | {acc[f'{k}_qdq_onnxruntime']:.2%} |" for k, title in titles.items()
              if f"{k}_qdq_onnxruntime" in acc]
    lines += [
        "",
        "`tests/test_bundled_model.py` checks that the compiled artifact reaches exactly the recorded figure. "
        f"Trade-off sweep (`{sweep['command']}`, {_machine(sweep['machine'])}):",
        "",
        "| point | zeros | accuracy | weight memory vs FP32 (run time) | latency ms | vs FP32 onnxruntime |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in [sweep["baseline"]] + sweep["rows"]:
        lines.append(f"| {r['point']} | {r['sparsity']:.0%} | {r['accuracy']:.2%} | {r['compression']:.2f}x | "
                     f"{r['latency_ms']:.3f} | {r['speedup']:.2f}x |")
    lines += ["", "![accuracy vs compression](docs/sweep/accuracy_vs_compression.png)",
              "![accuracy vs speed-up](docs/sweep/accuracy_vs_speedup.png)", ""]
    return lines


def _import_scripts() -> None:
    """The scripts' modules importable (bench_report), and the package they import (tvm_deepchip),
    as scripts/bench.py has them: run as a script, only this file's folder is on the path."""
    for path in (ROOT, ROOT / "scripts"):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))


def speed_section(bench) -> list[str]:
    if not bench:
        return []
    _import_scripts()
    from bench_report import CLASS_TITLES, newer_build, peer_ms

    lines = ["### Speed (batch 1, x86, one table per ISA class)", ""]
    for cls, sec in sorted(bench["sections"].items()):
        m, built = sec["machine"], sec.get("class", cls)  # a key may also name the host (bench.section_key)
        lines += [
            f"**{cls}** ({CLASS_TITLES.get(built, built)}): `{sec['command']}` on {sec['date']}, {m['cpu']} "
            f"(`{m['llvm_cpu']}`), {sec['threads']} threads, peers measured in the same run; details, spread and "
            "per-layer times against the roofline in BENCHMARKS.md."
            + "".join(f" Note: {note}." for note in (sec.get("note"), newer_build(cls, bench["sections"])) if note),
            "",
            "| model | zeros | onnxruntime FP32 ms | best int8 peer ms | tvm-deepchip ms | vs FP32 | vs best int8 |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for r in sec["rows"]:
            fp32, int8 = peer_ms(r, "ort_fp32"), peer_ms(r, "best_int8")
            zeros = "trained" if r["sparsity"] is None else f"{r['sparsity']:.0%}"
            lines.append(f"| {r['model']} | {zeros} | {fp32:.3f} | {int8:.3f} | {r['ms']:.3f} | "
                         f"{fp32 / r['ms']:.2f}x | {int8 / r['ms']:.2f}x |")
        lines.append("")
    lines += ["![speed](bench.png)", ""]
    return lines


SCHEME_TITLES = {"bwn": "BWN (binary weights, 8-bit activations)", "xnor": "BNN / XNOR-Net (binary weights and activations)"}


def binary_section(bench, digits) -> list[str]:
    """The binary schemes: the digits model's accuracy through the compiled .so, and the speed rows."""
    if not (bench or digits):
        return []
    _import_scripts()
    from bench_report import SCHEME_LABELS, peer_ms

    lines = ["### Binary networks (BNN / XNOR-Net, BWN)", ""]
    if digits:
        classes = sorted({k[len("compiled_"):] for r in digits["schemes"].values() for k in r if k.startswith("compiled_")})
        lines += [f"The digits model trained in each scheme from the shipped FP32 weights (`{digits['command']}`, "
                  f"{digits['machine']['cpu']}, {digits['date']}), {digits['test_images']} test images, on the same "
                  "exported ONNX:", "",
                  "| scheme | onnxruntime | " + " | ".join(f"compiled .so, {c}" for c in classes)
                  + " | predictions differing from onnxruntime |", "| --- " * (3 + len(classes)) + "|"]
        for scheme, r in digits["schemes"].items():
            differ = max(r[f"argmax_differs_{c}"] for c in classes)
            lines.append(f"| {SCHEME_TITLES[scheme]} | {r['onnxruntime']:.2%} | "
                         + " | ".join(f"{r[f'compiled_{c}']:.2%}" for c in classes) + f" | {differ} |")
        lines.append("")
    for cls, sec in sorted((bench or {}).get("sections", {}).items()):
        lines += [f"**{cls}**: `{sec['command']}` on {sec['date']}, {sec['machine']['cpu']}; medians (the spread over "
                  "blocks, wide on a shared machine, and per layer against the XNOR-popcount roofline: docs/binary/bench.md).", "",
                  "| network | onnxruntime FP32 ms | best int8 peer ms | tvm-deepchip ms | vs FP32 | vs best int8 "
                  "| weight memory vs FP32 |", "| --- | --- | --- | --- | --- | --- | --- |"]
        for r in sec["rows"]:
            fp32, int8 = peer_ms(r, "ort_fp32"), peer_ms(r, "best_int8")
            lines.append(f"| {r['model']} {SCHEME_LABELS.get(r.get('scheme'), '')} | {fp32:.3f} | {int8:.3f} | "
                         f"{r['ms']:.3f} | {fp32 / r['ms']:.2f}x | {int8 / r['ms']:.2f}x | "
                         f"{r['fp32_weight_bytes'] / r['weight_bytes']:.1f}x |")
        lines.append("")
    return lines


def memory_section(comp) -> list[str]:
    if not comp:
        return []
    lines = [
        "### Weight memory (first and last layers float, as in the paper)",
        "",
        "`python3 scripts/compression_table.py --out docs/compression.md --json docs/compression.json`; "
        "full table in docs/compression.md.",
        "",
        "| network | zeros | run time, default kernels | ternary layers: default / entropy bound "
        "| run time, all delta lists | run time, all uint16 index rows | run time, smallest per layer "
        "| stored (best encoding) | entropy bound | paper |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in comp:
        t, f = r["totals"], r["totals"]["fp32"]
        lines.append(f"| {r['model']} | {r['sparsity']:.0%} | {f / t['default']:.1f}x | {t['default_vs_entropy']:.2f}x "
                     f"| {f / t['delta']:.1f}x | {f / t['sparse']:.1f}x "
                     f"| {f / t['smallest']:.1f}x | {f / t['stored']:.1f}x | {f / t['entropy']:.1f}x | {r['paper']}x |")
    lines.append("")
    return lines


def replace_block(path: Path, lines: list[str]) -> None:
    text = path.read_text()
    block = BEGIN + "\n" + "\n".join(lines) + "\n" + END
    if BEGIN in text:
        text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)


def main() -> int:
    bench, sweep = _load("BENCHMARKS.json"), _load("docs/sweep/sweep.json")
    comp, train = _load("docs/compression.json"), _load("tvm_deepchip/data/digits_train.json")
    binary = binary_section(_load("docs/binary/bench.json"), _load("docs/binary/digits.json"))
    lines = accuracy_section(train, sweep) + speed_section(bench) + binary + memory_section(comp)
    replace_block(ROOT / "README.md", lines)
    if (ROOT / "BENCHMARKS.md").is_file():
        replace_block(ROOT / "BENCHMARKS.md", ["## Accuracy and weight memory", ""] + accuracy_section(train, sweep)
                      + memory_section(comp))
    print(f"wrote results into README.md and BENCHMARKS.md ({len(lines)} lines)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
