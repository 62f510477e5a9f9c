#!/usr/bin/env python3
"""The default build (delta lists or index rows per layer, tvm_deepchip/format_rule.py) against
the same build with every ternary layer in one format (`--baseline-format`, by default the uint16
index rows every layer ran in before the delta lists), whole networks, from a scripts/bench.py
run that timed both in the same turns as the peers. Writes a markdown table per ISA class, with
the delta lists' layers and the ternary bytes against the entropy bound.

    python3 scripts/bench.py --runs 100                    (baseline: every ternary layer sparse)
    python3 scripts/format_ab_report.py BENCHMARKS.json --out docs/format_ab/README.md
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import bench_report  # the paired per-block ratio, as BENCHMARKS.md prints it


def table(data: dict) -> list[str]:
    lines = []
    for key, sec in data["sections"].items():
        rows = [r for r in sec["rows"] if r.get("baseline")]
        if not rows:
            continue
        m, base = sec["machine"], rows[0]["baseline_format"]
        lines += [f"## {key}", "",
                  f"Measured by `{sec['command']}` on {sec['date']}, building for `{sec.get('class', key)}`. Machine: "
                  f"{m['cpu']} (LLVM cpu `{m['llvm_cpu']}`), {m['cores']} cores. Batch 1, {sec.get('threads', 2)} "
                  f"threads, median of {sec['runs']} runs, fastest of {sec.get('sessions', 1)} sessions; the two "
                  "builds and the peers took turns.", "",
                  f"| model | default ms | every ternary layer {base} ms | default speed vs {base} "
                  f"| vs {base}, paired blocks | vs {base}, one process | ternary bytes / entropy |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for r in rows:
            zeros = "trained" if r["sparsity"] is None else f"{r['sparsity']:.0%}"
            ratio = r.get("ternary_vs_entropy")
            lines.append(f"| {r['model']} {zeros} | {r['ms']:.3f} | {r['baseline']['ms']:.3f} "
                         f"| {r['baseline']['ms'] / r['ms']:.2f}x | {bench_report.paired(r['baseline'], r)} "
                         f"| {bench_report.one_process(r)} | {'' if ratio is None else f'{ratio:.2f}x'} |")
        lines.append("")
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bench_json")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    data = json.loads(Path(args.bench_json).read_text())
    head = ["# The default formats against one format everywhere, whole networks", "",
            f"`python3 scripts/format_ab_report.py {args.bench_json} --out {args.out}`, from a `scripts/bench.py` run "
            "in which each build was timed with its default formats (delta lists or index rows per layer, by "
            "tvm_deepchip/format_rule.py) and with every ternary layer in the baseline format, in the same turns "
            "(above 1x: the default is faster; paired blocks: the median (lowest-highest) of the ratios block by block, each block's turns under one machine state; one process: the two builds loaded in one process after the turns, timed in turns of 10 runs, the median (quartiles) of the pairs' ratios, free of the spread between processes, which on these VMs exceeds the formats' difference). Ternary bytes: what the default build's ternary kernels read at run "
            "time against the entropy bound of their signs (docs/compression.md).", ""]
    body = table(data)
    if not body:
        print(f"{args.bench_json}: no section timed a baseline format", file=sys.stderr)
        return 2
    Path(args.out).write_text("\n".join(head + body))
    return 0


if __name__ == "__main__":
    sys.exit(main())
