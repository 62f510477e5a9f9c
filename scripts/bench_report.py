"""Turn scripts/bench.py's measurements (BENCHMARKS.json: one section per x86 ISA class) into
BENCHMARKS.md and bench.png. No number is typed in: every figure comes from the JSON."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from compression_table import fmt_bytes
from tvm_deepchip.primitives import packed_windows

PEERS = {"ort_fp32": "onnxruntime FP32", "ort_int8": "onnxruntime int8", "ov_fp32": "OpenVINO FP32",
         "ov_int8": "OpenVINO int8", "lce": "Larq Compute Engine"}  # lce: BNN rows only (scripts/bench_larq.py)
INT8_PEERS = ("ort_int8", "ov_int8")
CLASS_TITLES = {"x86-avx2": "AVX2 (no AVX-512, no VNNI: AMD Zen 1-3, Intel client CPUs before Ice Lake)",
                "x86-avx512": "AVX-512BW without VNNI", "x86-avx512-vnni": "AVX-512 with VNNI"}


def _settled(sec) -> str:
    """What the round trip was around each model's turns (scripts/bench.py's settle), if recorded."""
    ns = [v for r in sec["rows"] for v in r.get("round_trip_ns") or () if v is not None]
    if not ns or "steady_ns" not in sec:
        return ""
    spread = f" or {sec['steady_spread']}x the run's lowest" if sec.get("steady_spread") else ""
    return (f"; before and after each model's turns (each waits up to {sec['settle_s']:.0f} s for it to fall "
            f"under {sec['steady_ns']:.0f} ns{spread}, and a model whose turns end above it is measured again, "
            f"{sec.get('retries', 0)} times at most): {min(ns):.0f}-{max(ns):.0f} ns")


def targets_of(row) -> list[tuple[str, str, float]]:
    """(peer key or "best_int8", description, factor) the issue's targets set for this row."""
    if row.get("scheme") == "xnor":  # binary networks (issue 14)
        return [("ort_fp32", "onnxruntime FP32", 8.0), ("best_int8", "best int8 peer", 3.0)]
    if row.get("scheme") == "bwn":
        return [("ort_fp32", "onnxruntime FP32", 3.0)]
    if row["model"] == "digits":
        return [("ort_fp32", "onnxruntime FP32", 3.0)]
    if row["model"] in ("svhn_convnet", "resnet44", "alexnet"):
        if row["sparsity"] is None or abs(row["sparsity"] - 0.9) > 1e-9:
            return []
        return [("ort_fp32", "onnxruntime FP32", 5.0), ("best_int8", "best int8 peer", 1.5)]
    return [("ort_fp32", "onnxruntime FP32", 2.0), ("best_int8", "best int8 peer", 1.0)]


def peer_ms(row, key):
    if key == "best_int8":
        got = [row["peers"][k]["ms"] for k in INT8_PEERS if k in row["peers"]]
        return min(got) if got else None
    return row["peers"].get(key, {}).get("ms")


SCHEME_LABELS = {"xnor": "BNN", "bwn": "BWN"}  # the binary schemes' rows (bench_models.Case.scheme)


def _label(row) -> str:
    if row.get("scheme", "ternary") != "ternary":
        return f"{row['model']} {SCHEME_LABELS[row['scheme']]}"
    return f"{row['model']} {'trained' if row['sparsity'] is None else format(row['sparsity'], '.0%')}"


def _spread(stat) -> str:
    blocks = stat.get("block_ms")
    return f"{stat['ms']:.3f} ({min(blocks):.3f}-{max(blocks):.3f})" if blocks else f"{stat['ms']:.3f}"


def _ratio(a, b) -> str:
    return f"{a / b:.2f}x" if a and b else "n/a"


def paired_ratios(base, ours) -> list[float] | None:
    """base / ours block by block: the two ran in turns within each block (timing.interleaved_stats),
    so a block's ratio compares them under the same machine state, which on a shared VM moves
    between blocks by more than the difference being measured (a 2-core VM: the same build 0.13-0.21
    ms a block)."""
    a, b = base.get("block_ms"), ours.get("block_ms")
    return [x / y for x, y in zip(a, b)] if a and b and len(a) == len(b) else None


def paired(base, ours) -> str:
    r = paired_ratios(base, ours)
    return f"{float(np.median(r)):.2f}x ({min(r):.2f}-{max(r):.2f})" if r else "n/a"


def one_process(row) -> str:
    """The baseline over the default, timed in one process in turns (bench_peers.vm_ab_timer):
    the median of the pairs' ratios (their quartiles)."""
    r = row.get("baseline_one_process")
    if not r:
        return "n/a"
    q25, q50, q75 = np.percentile(r, [25, 50, 75])
    return f"{q50:.2f}x ({q25:.2f}-{q75:.2f})"


def _log_name(path) -> str:
    if not path:
        return "none"
    p = Path(str(path).replace(" (ignored)", ""))
    name = f"tuning_logs/{p.name}" if p.parent.name == "tuning_logs" else str(p)
    return name + (" (ignored: another ISA class)" if "(ignored)" in str(path) else "")


def _prod(xs) -> int:
    out = 1
    for x in xs:
        out *= int(x)
    return out


def layer_work(info: dict) -> tuple[str, float]:
    """("int8" | "narrow" | "pairs" | "add" | "gather" | "xnor", operations) of one layer row: multiply-accumulates
    of an int8 layer ("narrow": its dot products read uint8 codes, which without VNNI means the
    7-bit-weight form, vpmaddubsw; "pairs": weights of 1 whose pair sums accumulate in int16,
    primitives/pair_sums), or the adds of a ternary one (one per non-zero weight and output position): vector
    adds over output positions, or, where the output has one position (dense layers, 1x1-output
    convs) and the sparse form runs, scalar gather-adds, one per index (nothing shares a tap). (The
    delta format's lists by input, column_lists, skip the zero inputs: their work is counted the
    same, every tap at the gather rate, though the timed input's zero half is not walked.)"""
    shape, oshape = info.get("shape", []), info.get("out_shape", [])
    if not shape or not oshape:
        return "int8", 0.0
    positions = _prod(oshape[2:])
    macs = _prod(shape) * positions * oshape[0]
    if info.get("format") == "xnor":
        return "xnor", float(macs)  # binary multiply-accumulates: one bit of a popcounted XOR each
    dot = "narrow" if info.get("dot_operand") == "uint8" else "int8"  # uint8 codes: VNNI's, or vpmaddubsw's (7-bit weights)
    dot = "pairs" if info.get("pair_sums") else dot  # weights of 1: vpmaddubsw's pairs summed in int16
    one_position = positions == 1
    windows = info.get("format") == "packed" and positions <= packed_windows.MAX_POSITIONS  # dense, packed_windows
    if info.get("kind") == "ternary" and (info.get("format") == "dot" or windows):
        return dot, 2.0 * macs  # every weight of both planes, by dot products (packed: its bits expanded, bit_dot)
    if info.get("kind") == "ternary" and info.get("format") != "int8":
        gathers = one_position and info.get("format") in ("sparse", "delta")  # scalar gather-adds
        return ("gather" if gathers else "add"), macs * (1 - info["sparsity"])
    return dot, float(macs)


RATE_OF = {"int8": "dot_macs_per_s", "narrow": "narrow_dot_macs_per_s", "pairs": "pair_dot_macs_per_s", "add": "ldadd16_per_s",
           "gather": "gather_per_s", "xnor": "xnor_bits_per_s"}  # peaks.c's fields
UNIT_OF = {"int8": "MACs", "narrow": "MACs", "pairs": "MACs", "add": "adds", "gather": "gather-adds", "xnor": "binary MACs"}
# sections measured before a peak existed: the rate that stood for it
OLDER_RATE = {"narrow": RATE_OF["int8"], "pairs": RATE_OF["narrow"], "gather": RATE_OF["add"]}


def compute_roof_us(info: dict, peaks: dict, cores: int) -> float | None:
    """A layer's work at this core's peak rate for its kind, on `cores` cores."""
    kind, ops = layer_work(info)
    rate = peaks.get(RATE_OF[kind]) or peaks.get(OLDER_RATE.get(kind, ""))
    return 1e6 * ops / (rate * cores) if rate and ops else None


def memory_roof(info: dict, peaks: dict, cores: int) -> tuple[float, str] | None:
    """(us, "L2" | "L3"): a layer's run-time weight bytes at one core's read bandwidth from the
    cache that holds them (its L2 where they fit one, else L3: a layer timed alone keeps them
    there), times `cores`. A lower bound: the activations' bytes are not counted, and L3's rate
    is counted once a core though the cores share it. None for sections measured before the
    bandwidths were (scripts/peak/read_bandwidth.c)."""
    size = info.get("weight_bytes")
    if not size or not peaks.get("l2_read_bytes_per_s"):
        return None
    level = "L2" if size <= peaks["l2_bytes"] else "L3"
    return 1e6 * size / (peaks[f"{level.lower()}_read_bytes_per_s"] * cores), level


def roof(info: dict, peaks: dict, cores: int) -> tuple[float, str] | None:
    """(us, the roof that binds: "compute", "L2" or "L3"): the roofline model's time for one
    layer, the larger of its compute roof and its memory roof; None without a compute roof."""
    compute = compute_roof_us(info, peaks, cores)
    if compute is None:
        return None
    memory = memory_roof(info, peaks, cores)
    return memory if memory and memory[0] > compute else (compute, "compute")


def roofline_us(info: dict, peaks: dict, cores: int) -> float | None:
    found = roof(info, peaks, cores)
    return found[0] if found else None


def lce_note(row) -> str | None:
    """What the Larq Compute Engine column of a BNN row ran, and how its output compared with
    onnxruntime's on the quantized model (scripts/larq_peer.py's check), or None without it."""
    lce = row.get("lce")
    if not lce:
        return None
    v = lce.get("versions", {})
    binary = lce.get("ops", {}).get("LceBconv2d", 0)
    deviations = [n for n in lce.get("notes", []) if not n.startswith("first/last")]
    return (f"{_label(row)}: Larq Compute Engine {v.get('larq_compute_engine', '?')} (TensorFlow {v.get('tensorflow', '?')}) "
            f"ran the same network rebuilt in Larq, {binary} binary convolutions (LceBconv2d), float where the "
            f"quantized model is int8 (first and last layers, the activations it rounds); against onnxruntime on the "
            f"quantized model: argmax {'agrees' if lce['argmax_agrees_with_ort'] else 'differs'}, largest logit "
            f"difference {lce['max_abs_diff_vs_ort']:.2g} (logits up to {lce.get('max_abs_logit_ort', float('nan')):.2g})"
            + (f"; also {'; '.join(deviations)}" if deviations else "") + ".")


def newer_build(key: str, sections: dict) -> str | None:
    """A note for a section another section has since re-measured with a newer build of the same ISA
    class (on another machine): its kernels are older than the ones that run now."""
    sec, built = sections[key], sections[key].get("class", key)
    newer = [(s["date"], k) for k, s in sections.items() if k != key and s.get("class", k) == built and s["date"] > sec["date"]]
    if not newer:
        return None
    date, other = max(newer)
    return (f"measured on {sec['date']} with the kernels of then; the `{other}` section ({date}) times a newer "
            f"{built} build (on another machine)")


def _section(cls: str, sec: dict, stale: str | None = None) -> list[str]:
    m, pk = sec["machine"], sec.get("peaks", {})
    cores = sec.get("threads", 2)
    built = sec.get("class", cls)  # the section's key may also name the host (bench.section_key)
    lines = [f"## {cls}: {CLASS_TITLES.get(built, built)}", "",
             f"Measured by `{sec['command']}` on {sec['date']}, building for `{built}`. Machine: {m['cpu']} "
             f"(LLVM cpu `{m['llvm_cpu']}`, ISA {', '.join(m['isa'])}), {m['cores']} cores, Python {m['python']}. "
             f"Batch 1, {cores} threads, median of {sec['runs']} runs after warm-up (in parentheses: the lowest and "
             "highest median of the 5 blocks in which all contenders took turns)"
             + (f"; every contender ran as {sec['sessions']} sessions, each its own process, and its fastest session "
                "counts (a runtime's speed differs between process instances; BENCHMARKS.json keeps every "
                "session's median)" if sec.get("sessions", 1) > 1 else "")
             + ". Random weights, except the digits model (trained, its own zeros).", ""]
    for note in (sec.get("note"), stale):
        if note:
            lines += [f"Note: {note}.", ""]
    if pk.get("ldadd16_per_s"):
        lines += [f"Rooflines (scripts/peak/peaks.c, built for this class, one core): int8 dot product "
                  f"{pk['dot_macs_per_s'] / 1e9:.0f} G multiply-accumulates/s ({pk['dot_kind']})"
                  + (f", layers of 7-bit weights {pk['narrow_dot_macs_per_s'] / 1e9:.0f} G/s ({pk['narrow_dot_kind']})"
                     if pk.get("narrow_dot_kind") and pk["narrow_dot_kind"] != pk["dot_kind"] else "")
                  + (f", binary and ternary weights {pk['pair_dot_macs_per_s'] / 1e9:.0f} G/s ({pk['pair_dot_kind']})"
                     if pk.get("pair_dot_kind") and pk["pair_dot_kind"] != pk["dot_kind"] else "")
                  + "; int16 vector "
                  f"adds with a loaded operand {pk['ldadd16_per_s'] / 1e9:.0f} G/s (registers only "
                  f"{pk['add16_per_s'] / 1e9:.0f} G/s); fp32 FMA {pk['fma_per_s'] / 1e9:.0f} G/s"
                  + (f"; scalar gather-adds (an index, the byte it points at, an add: sparse layers with one output "
                     f"position) {pk['gather_per_s'] / 1e9:.1f} G/s" if pk.get("gather_per_s") else "")
                  + (f"; XNOR-popcount (binary layers) {pk['xnor_bits_per_s'] / 1e9:.0f} G binary MACs/s"
                     if pk.get("xnor_bits_per_s") else "")
                  + f". A layer's compute roof is its work at these rates on {cores} cores"
                  + (f"; its memory roof, its run-time weight bytes at this core's read bandwidth (scripts/peak/"
                     f"read_bandwidth.c) from L2 ({pk['l2_read_bytes_per_s'] / 1e9:.0f} GB/s, where they fit its "
                     f"{pk['l2_bytes'] >> 10} KB) or else L3 ({pk['l3_read_bytes_per_s'] / 1e9:.0f} GB/s), on {cores} "
                     "cores; its roofline, the larger of the two" if pk.get("l2_read_bytes_per_s") else "")
                  + ".", ""]
    if sec.get("round_trip_ns") and None not in sec["round_trip_ns"]:
        lines += ["Core-to-core round trip (scripts/peak/core_round_trip.c: a cache line between the two cores "
                  "and back) at the run's start and end: " + " / ".join(f"{v:.0f}" for v in sec["round_trip_ns"])
                  + " ns" + _settled(sec) + ". On a VM it moves with the host's placement of the vCPUs, and "
                  "the time of models of many small parallel layers moves with it.", ""]
    peers = [k for k in PEERS if any(k in r["peers"] for r in sec["rows"])]
    base = next((r["baseline_format"] for r in sec["rows"] if r.get("baseline_format")), None)
    extra = (f" | with {base} layers ms | vs {base} | vs {base}, paired blocks | vs {base}, one process "
             "| ternary bytes / entropy") if base else ""
    lines += ["| model | " + " | ".join(f"{PEERS[k]} ms" for k in peers) + " | tvm-deepchip ms | vs ORT FP32 "
              "| vs best int8 | weight memory vs FP32 | argmax = onnxruntime" + extra + " |",
              "| --- " * (len(peers) + 6 + (5 if base else 0)) + "|"]
    for r in sec["rows"]:
        more = ""
        if base:
            b = r.get("baseline")
            vs = r.get("ternary_vs_entropy")
            if r.get("baseline_same"):
                more = f" | same kernels | 1x (same build) | | | {f'{vs:.2f}x' if vs else ''}"
            else:
                more = (f" | {_spread(b) if b else ''} | {_ratio(b['ms'], r['ms']) if b else ''} "
                        f"| {paired(b, r) if b else ''} | {one_process(r) if b else ''} | {f'{vs:.2f}x' if vs else ''}")
        lines.append(f"| {_label(r)} | " + " | ".join(_spread(r["peers"][k]) if k in r["peers"] else "" for k in peers)
                     + f" | {_spread(r)} | {_ratio(peer_ms(r, 'ort_fp32'), r['ms'])} | "
                     f"{_ratio(peer_ms(r, 'best_int8'), r['ms'])} | {_ratio(r['fp32_weight_bytes'], r['weight_bytes'])} "
                     f"| {r['argmax_agrees_with_ort']}{more} |")
    lines += ["", "Speed-up columns: peer time / tvm-deepchip time (above 1: tvm-deepchip is faster)"
              + (f"; `vs {base}`: the same build with every ternary layer in the {base} format (the format the "
                 f"default replaced), timed in the same turns (`same kernels`: every ternary layer of the default build already runs that format, so there is no second build to time), as the ratio of the two medians and, `paired blocks`, as the median (lowest-highest) of the ratios block by block (the two took turns within each block, so each block compares them under one machine state); `one process`: the two builds loaded in one process after the turns and timed in turns of 10 runs, the median (quartiles) of the pairs' ratios (the sessions above are each their own process, and a process's memory layout moves a build's time by more than its formats do); `ternary bytes / entropy`: what the ternary layers' "
                 "kernels read at run time against the entropy bound of their signs" if base else "") + ".", ""]
    notes = [n for n in map(lce_note, sec["rows"]) if n]
    if notes:
        lines += [f"- {n}" for n in notes] + [""]
    lines += _targets(sec)
    for r in sec["rows"]:
        lines += _layers(r, pk, cores)
    return lines


def rooflines_ms(r, pk, cores) -> float | None:
    """The sum of a model's layer rooflines (ms): its kernels' work at the peak rates, no glue."""
    info = {row["layer"]: row for row in r["report"]}
    roofs = [roofline_us(info.get(name, {}), pk, cores) for name in r["layers"]]
    return sum(x for x in roofs if x) / 1e3 if any(roofs) else None


def _targets(sec) -> list[str]:
    pk, cores = sec.get("peaks", {}), sec.get("threads", 2)
    lines = ["| target | measured | | needs ms | sum of layer rooflines ms |", "| --- | --- | --- | --- | --- |"]
    for r in sec["rows"]:
        roof = rooflines_ms(r, pk, cores) if pk.get("ldadd16_per_s") else None
        for key, name, want in targets_of(r):
            base = peer_ms(r, key)
            if base is None:
                continue
            got = base / r["ms"]
            verdict = "met" if got >= want else f"missed by {want / got:.1f}x"
            lines.append(f"| {_label(r)}: {want:g}x {name} | {got:.2f}x | {verdict} | {base / want:.3f} | "
                         f"{f'{roof:.3f}' if roof is not None else ''} |")
    return ["### Targets", ""] + lines + [
        "", "Needs: the time the target allows. Sum of layer rooflines: every layer's work at this core's "
        "measured peak (int8 dot products, int16 vector adds with a loaded operand) on both cores, or, where "
        "larger, its weight bytes at the measured read bandwidth of the cache holding them, with no "
        "glue, no index traffic and perfect two-core scaling: a target needing less than it is out of "
        "physical reach for these layer forms on this CPU.", ""]


def _layer_stat(stat) -> str:
    """How bench.per_layer took each layer's time: "best" (older runs: the fastest of 15 repeats
    in a row), or {"fastest": n, "rounds": k} (the fastest of n repeats in k rounds over the
    model's layers)."""
    if stat == "best":
        return ", the fastest of 15 repeats"
    if isinstance(stat, dict):
        return f", the fastest of {stat['fastest']} repeats taken in {stat['rounds']} rounds over the model's layers"
    return ""


def _layers(r, pk, cores) -> list[str]:
    tuned = sum(1 for v in r["schedules"].values() if v == "tuned")
    lines = [f"### {_label(r)}: per layer", "",
             f"Schedules: {tuned} tuned, {len(r['schedules']) - tuned} hand-written defaults (tuning log: "
             f"{_log_name(r['tuning_log'])}). Largest logit difference from onnxruntime on the same quantized "
             f"model: {r.get('max_abs_diff_vs_ort', float('nan')):.2g}. Each kernel built alone with the same "
             "schedule and timed (TVM's time evaluator" + _layer_stat(r.get("layer_stat")) + ").", "",
             "| layer | kind | us | work | weight bytes | roofline us | bound by | x roofline |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    info = {row["layer"]: row for row in r["report"]}
    total = 0.0
    for name, us in r["layers"].items():
        row = info.get(name, {})
        kind, ops = layer_work(row)
        found = roof(row, pk, cores)
        total += us
        work = f"{ops / 1e6:.2f} M {UNIT_OF[kind]}"
        roof_cells = f"{found[0]:.1f} | {found[1]} | {us / found[0]:.1f}" if found else " | | "
        lines.append(f"| {name} | {row.get('kind', '?')} {row.get('format', '')} | {us:.1f} | {work} | "
                     f"{fmt_bytes(row['weight_bytes']) if row.get('weight_bytes') else ''} | {roof_cells} |")
    lines += [f"| (sum of layers) | | {total:.1f} | | | | | |",
              f"| (rest: TVM's kernels, data movement, VM calls) | | {1e3 * r['ms'] - total:.1f} | | | | | |", ""]
    return lines


def write_report(sections: dict, out: Path) -> None:
    schemes = {r.get("scheme", "ternary") for sec in sections.values() for r in sec["rows"]}
    targets = []
    if "ternary" in schemes:
        targets.append("at 90% zeros: 5x onnxruntime FP32 and 1.5x the best int8 peer for the three networks; 3x "
                       "onnxruntime FP32 for the digits model; 2x onnxruntime FP32 and 1x the best int8 peer for small models")
    if schemes - {"ternary"}:
        targets.append("BNN (binary weights and activations, first and last layers int8): 8x onnxruntime FP32 and 3x "
                       "the best int8 peer; BWN (binary weights): 3x onnxruntime FP32; the peers run the float network")
    lines = ["# Benchmarks", "",
             "Produced by `scripts/bench.py` (one section per x86 ISA class; each section measured on the machine "
             f"it names, its peers measured in the same run). Targets: the issues' ({'; '.join(targets)}).", ""]
    for cls in sorted(sections):
        lines += _section(cls, sections[cls], newer_build(cls, sections))
    out.write_text("\n".join(lines) + "\n")
    _plot(sections, out.with_name("bench.png"))


def _plot(sections, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(len(sections), 1, figsize=(12, 4 * len(sections)), squeeze=False)
    for ax, cls in zip(axes[:, 0], sorted(sections)):
        rows = sections[cls]["rows"]
        keys = [k for k in PEERS if any(k in r["peers"] for r in rows)]
        x = np.arange(len(rows))
        width = 0.8 / (len(keys) + 1)
        for i, k in enumerate(keys):
            ax.bar(x + i * width, [r["peers"].get(k, {}).get("ms", np.nan) for r in rows], width, label=PEERS[k])
        ax.bar(x + len(keys) * width, [r["ms"] for r in rows], width, label="tvm-deepchip", color="black")
        ax.set_xticks(x + 0.4 - width / 2, [_label(r).replace(" ", "\n") for r in rows], fontsize=8)
        ax.set_yscale("log")
        ax.set_ylabel("latency, ms (log)")
        ax.set_title(f"{cls}: batch 1, {sections[cls]['threads']} threads, {sections[cls]['machine']['llvm_cpu']}")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":  # re-render the report from a saved BENCHMARKS.json
    import json
    import sys

    src = Path(sys.argv[1] if len(sys.argv) > 1 else "BENCHMARKS.json")
    write_report(json.loads(src.read_text())["sections"], src.with_suffix(".md"))
