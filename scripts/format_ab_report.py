#!/usr/bin/env python3
"""The delta lists against the uint16 index rows, whole networks, from a scripts/bench.py run that
timed both: the build in one of the two formats (the default) and, with `--baseline-format` the
other, each build also with every ternary layer in that format, in the same turns as the peers.
Writes a markdown table per ISA class.

    python3 scripts/bench.py --runs 100 --baseline-format delta    (default ternary format: sparse)
    python3 scripts/format_ab_report.py BENCHMARKS.json --out docs/format_ab/README.md
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


PAIR = ("delta", "sparse")


def delta_and_rows(r: dict) -> tuple[dict, dict]:
    """(the delta lists' timing, the index rows' timing) of a bench row, whichever was the build's
    format and whichever the baseline's."""
    return (r["baseline"], r) if r["baseline_format"] == "delta" else (r, r["baseline"])


def table(data: dict) -> list[str]:
    lines = []
    for key, sec in data["sections"].items():
        rows = [r for r in sec["rows"] if r.get("baseline") and r.get("baseline_format") in PAIR]
        if not rows:
            continue
        m = sec["machine"]
        lines += [f"## {key}", "",
                  f"Measured by `{sec['command']}` on {sec['date']}, building for `{sec.get('class', key)}`. Machine: "
                  f"{m['cpu']} (LLVM cpu `{m['llvm_cpu']}`), {m['cores']} cores. Batch 1, {sec.get('threads', 2)} "
                  f"threads, median of {sec['runs']} runs, fastest of {sec.get('sessions', 1)} sessions; the two "
                  "builds and the peers took turns.", "",
                  "| model | delta lists ms | index rows ms | delta speed vs index rows |",
                  "| --- | --- | --- | --- |"]
        for r in rows:
            zeros = "trained" if r["sparsity"] is None else f"{r['sparsity']:.0%}"
            delta, index_rows = delta_and_rows(r)
            lines.append(f"| {r['model']} {zeros} | {delta['ms']:.3f} | {index_rows['ms']:.3f} "
                         f"| {index_rows['ms'] / delta['ms']:.2f}x |")
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
            "in which each build was timed with its ternary layers as delta lists and as uint16 index rows, in the same "
            "turns (above 1x: delta faster). The delta lists' bytes against the entropy bound: docs/compression.md.", ""]
    body = table(data)
    if not body:
        print(f"{args.bench_json}: no section timed a baseline format", file=sys.stderr)
        return 2
    Path(args.out).write_text("\n".join(head + body))
    return 0


if __name__ == "__main__":
    sys.exit(main())
