#!/usr/bin/env python3
"""The delta lists against the uint16 index rows, whole networks, from a scripts/bench.py run that
timed both (`--baseline-format sparse`: each build also with every ternary layer in the index-row
format, in the same turns as the peers). Writes a markdown table (and a plot) per ISA class.

    (the run of docs/format_ab/bench.json: the commit whose default ternary format was delta)
    python3 scripts/format_ab_report.py docs/format_ab/bench.json --out docs/format_ab/README.md
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def table(data: dict) -> list[str]:
    lines = []
    for key, sec in data["sections"].items():
        rows = [r for r in sec["rows"] if r.get("baseline")]
        if not rows:
            continue
        m = sec["machine"]
        lines += [f"## {key}", "",
                  f"Measured by `{sec['command']}` on {sec['date']}, building for `{sec.get('class', key)}`. Machine: "
                  f"{m['cpu']} (LLVM cpu `{m['llvm_cpu']}`), {m['cores']} cores. Batch 1, {sec.get('threads', 2)} "
                  f"threads, median of {sec['runs']} runs, fastest of {sec.get('sessions', 1)} sessions; the two "
                  "builds and the peers took turns.", "",
                  "| model | delta lists ms | index rows ms | delta speed vs index rows | ternary bytes / entropy (delta) |",
                  "| --- | --- | --- | --- | --- |"]
        for r in rows:
            zeros = "trained" if r["sparsity"] is None else f"{r['sparsity']:.0%}"
            label = f"{r['model']} {zeros}"
            vs = r.get("ternary_vs_entropy")
            lines.append(f"| {label} | {r['ms']:.3f} | {r['baseline']['ms']:.3f} | {r['baseline']['ms'] / r['ms']:.2f}x "
                         f"| {f'{vs:.2f}x' if vs else ''} |")
        lines.append("")
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bench_json")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    data = json.loads(Path(args.bench_json).read_text())
    head = ["# Delta lists vs uint16 index rows, whole networks", "",
            f"`python3 scripts/format_ab_report.py {args.bench_json} --out {args.out}`, from a `scripts/bench.py` run "
            "in which the build's ternary layers were delta lists and each build was also timed with them as uint16 "
            "index rows (above 1x: delta faster).", ""]
    body = table(data)
    if not body:
        print(f"{args.bench_json}: no section timed a baseline format", file=sys.stderr)
        return 2
    Path(args.out).write_text("\n".join(head + body))
    return 0


if __name__ == "__main__":
    sys.exit(main())
