#!/usr/bin/env python3
"""Benchmark: tvm-deepchip against its peers, measured in one run on this machine, per ISA class.

For each case (scripts/bench_models.py: the three networks at 90% and 95% zeros, the bundled digits
model, two small models nobody tuned for), batch 1, 2 threads: onnxruntime FP32 and int8 (its own
static QDQ quantization, per-channel), OpenVINO FP32 and int8 (the same QDQ model), for the BNN
("xnor") rows Larq Compute Engine on the same BNN (scripts/bench_larq.py; needs $DEEPCHIP_LARQ_PYTHON), and
tvm-deepchip built for every x86 ISA class this CPU runs (an AVX-512 VNNI machine also runs the
AVX2 build: what an AVX2 user gets). Each contender runs as several sessions, each in its own process
(a runtime's speed differs between process instances: onnxruntime FP32 by up to 2x here); all
sessions take turns in 5 blocks (a burst of noise on a shared machine falls on all); each contender's
fastest session counts: its median, with the spread of its block medians. Per layer: each kernel built
alone and timed, against the roofline of that ISA class (scripts/peak/peaks.c, measured here).
Writes BENCHMARKS.md, BENCHMARKS.json (one section per ISA class: other classes' sections,
measured on other machines, are kept) and bench.png.

    python3 scripts/bench.py                          # everything (about 15 minutes)
    python3 scripts/bench.py --models svhn_convnet digits --sparsity 0.9 --runs 50
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
THREADS = 2
# gcc flags per class (Debian 12's gcc 12 knows no znver4: the ISA levels, plus VNNI and VPOPCNTDQ, which znver4 has)
MARCH = {"x86-avx2": ["-march=x86-64-v3"], "x86-avx512": ["-march=x86-64-v4"],
         "x86-avx512-vnni": ["-march=x86-64-v4", "-mavx512vnni", "-mavx512vpopcntdq"]}

import bench_models  # noqa: E402
import bench_larq  # noqa: E402
import bench_peers  # noqa: E402
from bench_isolated import Isolated  # noqa: E402
from tvm_deepchip.timing import fastest_sessions, interleaved_stats  # noqa: E402


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@functools.lru_cache(maxsize=None)
def _peak_executable(name: str, *flags: str) -> Path:
    """scripts/peak/<name>.c built with `flags`, once a run (settle runs the round trip before and
    after every model, and every 15 s while it waits)."""
    exe = Path(tempfile.mkdtemp()) / name
    subprocess.run(["gcc", "-O2", *flags, str(ROOT / "scripts/peak" / f"{name}.c"), "-o", str(exe)], check=True)
    return exe


def _peak_program(name: str, *flags: str, args=()) -> dict:
    """Run scripts/peak/<name>.c built with `flags` (with `args`): the JSON object it prints."""
    exe = _peak_executable(name, *flags)
    return json.loads(subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, check=True).stdout)


def peaks(cls: str) -> dict:
    """This core's peaks for the instructions of ISA class `cls` (scripts/peak/peaks.c), and its
    read bandwidth from L2 and L3 (read_bandwidth)."""
    return {**_peak_program("peaks", *MARCH[cls]), **read_bandwidth(cls)}


CACHE_DIR = Path("/sys/devices/system/cpu/cpu0/cache")


def cache_bytes() -> dict:
    """{level: bytes} of this CPU's data (or unified) caches, from sysfs; {} where it says nothing."""
    sizes = {}
    for index in sorted(CACHE_DIR.glob("index*")):
        try:
            if (index / "type").read_text().strip() == "Instruction":
                continue
            size = (index / "size").read_text().strip()
            scale = {"K": 1 << 10, "M": 1 << 20}.get(size[-1:], 1)
            sizes[int((index / "level").read_text())] = int(size.rstrip("KM")) * scale
        except (OSError, ValueError):
            continue
    return sizes


def read_bandwidth(cls: str) -> dict:
    """One core's read bandwidth (scripts/peak/read_bandwidth.c, the class's loads) from a buffer
    of half its L2 and from one of a quarter of its L3 (at most 8 MB: the share a core may count
    on), with the sizes the layers' weights are held against (bench_report.memory_roof); {}
    where sysfs gives no L2 and L3."""
    sizes = cache_bytes()
    if 2 not in sizes or 3 not in sizes:
        return {}
    l2, l3 = sizes[2] // 2, min(sizes[3] // 4, 8 << 20)
    rates = _peak_program("read_bandwidth", *MARCH[cls], args=(l2, l3))["read_bytes_per_s"]
    return {"l2_bytes": sizes[2], "l2_read_bytes_per_s": rates[str(l2)],
            "l3_bytes": sizes[3], "l3_read_bytes_per_s": rates[str(l3)]}


def core_round_trip() -> float | None:
    """Nanoseconds a cache line takes between two cores and back, now (scripts/peak/core_round_trip.c):
    on a VM it moves with the host's placement of the vCPUs, and so do models of many small
    parallel layers."""
    return _peak_program("core_round_trip", "-pthread")["core_round_trip_ns"]


RETRIES = 2  # a model measured again at most this many times (see settle)
STEADY_SPREAD = 1.5  # ... and a round trip within this factor of the run's lowest counts as steady


def steady_bound(steady_ns: float, seen: list) -> float:
    """The round trip settle waits for: under `steady_ns`, or within STEADY_SPREAD of the lowest
    the run has seen (a machine whose two cores are always farther apart is not waited on)."""
    lowest = min((v for v in seen if v is not None), default=0.0)
    return max(steady_ns, STEADY_SPREAD * lowest)


def round_trip_seen(seen: list) -> float | None:
    """core_round_trip(), kept in `seen`."""
    seen.append(core_round_trip())
    return seen[-1]


def settle(limit_s: float, steady_ns: float, seen: list) -> float | None:
    """The core-to-core round trip before a model's turns, after waiting up to `limit_s` seconds
    for it to fall under steady_bound: on these VMs it sits at 70-130 ns, and for minutes at a
    time at 330-900 ns, when two-thread runs of models of many small layers take up to twice as
    long while the peers move less (ResNet-44 0.098 ms in one run, 0.202 in the next). A model
    whose turns end in such a phase is measured again (RETRIES); the round trips before and
    after its turns are in its row, and a phase that does not pass is measured as it is."""
    start = time.monotonic()
    ns = round_trip_seen(seen)
    while ns is not None and ns > (bound := steady_bound(steady_ns, seen)) and time.monotonic() - start < limit_s:
        log(f"core-to-core round trip {ns:.0f} ns, over {bound:.0f}: waiting for the host to settle")
        time.sleep(15)
        ns = round_trip_seen(seen)
    return ns


LAYER_ROUNDS = 3  # per-layer timing: rounds over all of a model's layers (see per_layer)
LAYER_REPEATS = 5  # ... of this many repeats a layer each


def per_layer(qmodel, compiled, input_shapes, runs) -> dict:
    """Per-layer times (us) of our kernels: each layer's primitive built alone with the same
    schedule and format, timed with TVM's time evaluator (TVM 0.27's Relax VM has no profiler),
    the fastest of LAYER_ROUNDS x LAYER_REPEATS repeats, the rounds going over all the layers
    in turn. (A median of 3 let one burst of a shared machine's noise into the table: layers
    summed past the whole model's time; 15 repeats a layer in a row let a slow phase of the VM
    host, seconds long, fall on a run of layers: ResNet-44's 3x3 layers 2.3x-4.9x their roofline
    in one table, 2.5x-2.9x in others.)"""
    from tvm_deepchip import compiler, format_choice, targets
    from tvm_deepchip.formats import DEFAULT_TERNARY

    plan = compiler.lower(qmodel, targets.BuildTarget.of(compiled.preset), input_shapes=input_shapes).plan
    fmts = {r["layer"]: r.get("format") for r in compiled.report.layers}
    timers = {layer.name: format_choice.layer_timer(layer, shape, fmts.get(layer.name) or DEFAULT_TERNARY,
                                                    compiled.preset) for layer, shape in plan.lowered_layers()}
    number = max(5, runs // 10)
    if timers:
        next(iter(timers.values()))(number, 1)  # a warm-up: the first kernel a process times ran 1.2-1.4x slower (znver5)
    best = {name: float("inf") for name in timers}
    for _ in range(LAYER_ROUNDS):
        for name, timer in timers.items():
            best[name] = min(best[name], *timer(number, LAYER_REPEATS))
    twins = {layer.name: (layer.weight_kind, tuple(shape), tuple(layer.codes.shape), fmts.get(layer.name))
             for layer, shape in plan.lowered_layers()}
    for _ in range(OUTLIER_ROUNDS):
        slow = outliers(best, twins)
        if not slow:
            break
        log(f"per-layer times: {', '.join(slow)} over {OUTLIER_FACTOR}x their twins' median: timed again")
        for name in slow:
            best[name] = min(best[name], *timers[name](number, LAYER_REPEATS))
    return best


OUTLIER_FACTOR = 3.0  # a layer this much slower than the median of its twins (same kind, shapes, format) ...
OUTLIER_ROUNDS = 3  # ... is timed again, at most this many more times


def outliers(best: dict, twins: dict) -> list:
    """The layers whose time is over OUTLIER_FACTOR x the median of the layers with the same key
    in `twins` (kind, input and weight shapes, format): the same kernel cannot take 3x as long,
    a shared host can (one of ResNet-44 BNN's 64-channel 8x8 convs once took 207 us, its ten
    twins 2.2-2.5, in all 15 repeats of a table's run)."""
    groups = {}
    for name, key in twins.items():
        groups.setdefault(key, []).append(best[name])
    return [name for name, key in twins.items()
            if len(groups[key]) >= 3 and best[name] > OUTLIER_FACTOR * float(np.median(groups[key]))]


class Peers:
    """Each float model's peers, built once (they do not depend on our sparsity), each in its own
    process (scripts/bench_isolated.py)."""

    def __init__(self, workdir: Path, sessions: int):
        self.workdir, self.sessions, self.cache = workdir, sessions, {}

    def timers(self, case) -> dict:
        if case.name not in self.cache:
            log(f"{case.name}: onnxruntime and OpenVINO, FP32 and int8 (onnxruntime's static QDQ, per-channel)")
            feed = {case.fp32.graph.input[0].name: case.x}
            fp32 = self.workdir / f"{case.name}.fp32.onnx"
            fp32.write_bytes(case.fp32.SerializeToString())
            int8 = bench_peers.ort_int8_model(case.fp32, case.calib, self.workdir)
            self.close()  # one model's peers alive at a time
            peers = {"ort_fp32": (bench_peers.ort_timer, fp32.read_bytes(), feed, THREADS),
                     "ort_int8": (bench_peers.ort_timer, int8.read_bytes(), feed, THREADS),
                     "ov_fp32": (bench_peers.openvino_timer, fp32, case.x, THREADS),
                     "ov_int8": (bench_peers.openvino_timer, int8, case.x, THREADS)}
            self.cache[case.name] = {f"{name}#{i}": Isolated(f"{name}#{i}", *args)
                                     for name, args in peers.items() for i in range(self.sessions)}
        return self.cache[case.name]

    def close(self):
        for timers in self.cache.values():
            for timer in timers.values():
                timer.close()
        self.cache.clear()


def quantized(case, workdir: Path) -> Path:
    """The case's quantized ONNX model (made once per case; our builds and the Larq peer read it)."""
    import tvm_deepchip

    tag = f"{case.name}.s{int(100 * case.sparsity) if case.sparsity is not None else 'trained'}.{case.scheme}"
    qpath = workdir / f"{tag}.q.onnx"
    if not qpath.exists():
        kwargs = {"scheme": case.scheme} if case.sparsity is None else {"sparsity": case.sparsity}
        tvm_deepchip.quantize(case.to_quantize, qpath, calib=case.calib, **kwargs)
    return qpath


def build(case, cls: str, workdir: Path, default_ternary: str | None = None):
    """Quantize (once per case) and compile for ISA class `cls` (the x86 preset, switched), the
    ternary layers in `default_ternary` where given (else the compiler's default)."""
    import onnx

    import tvm_deepchip
    from tvm_deepchip import isa

    qmodel = onnx.load(str(quantized(case, workdir)))
    shapes = {qmodel.graph.input[0].name: list(case.x.shape)}
    os.environ[isa.X86_SWITCH] = cls
    try:
        extra = {"default_ternary": default_ternary} if default_ternary else {}
        compiled = tvm_deepchip.compile(qmodel, "x86", input_shapes=shapes, **extra)
    finally:
        os.environ.pop(isa.X86_SWITCH, None)
    return qmodel, compiled, shapes


def _kernels(compiled) -> list:
    """Which primitive each layer of a compiled model runs."""
    return [(r["layer"], r["primitive"]) for r in compiled.report.layers]


def bench_case(case, classes, runs, peers: Peers, workdir: Path, baseline: str | None = None,
               larq_python: str | None = None) -> dict:
    """One model: the peers, our build per class and, with `baseline`, our build per class with
    every ternary layer in that format (the format the default replaced), all taking turns, then
    the two builds in one process, in turns (bench_peers.vm_ab_timer: their ratio without the
    process-to-process spread). A BNN
    case also has Larq Compute Engine as a peer when `larq_python` (the Larq venv's) is given."""
    from tvm_deepchip import isa, oracle

    label = f"{case.name} {case.scheme if case.scheme != 'ternary' else 'trained' if case.sparsity is None else f'{case.sparsity:.0%}'}"
    timers = dict(peers.timers(case))
    built, own, same, pairs = {}, [], set(), {}
    lce_check = None
    if case.scheme == "xnor" and larq_python:
        lce, lce_check = bench_larq.timers(larq_python, case, quantized(case, workdir), workdir, peers.sessions,
                                           THREADS, Isolated, log)
        own += lce.values()
        timers.update(lce)
    for cls in classes:
        log(f"{label}: tvm-deepchip quantize + compile for {cls}")
        built[cls] = build(case, cls, workdir)
        library = built[cls][1].export(workdir / f"{case.name}.{cls}.so")
        for i in range(peers.sessions):
            own.append(Isolated(f"deepchip:{cls}#{i}", bench_peers.vm_timer, library, case.x))
            timers[own[-1].name] = own[-1]
        if baseline:
            other = build(case, cls, workdir, baseline)[1]
            if _kernels(other) == _kernels(built[cls][1]):  # nothing to compare: the two builds' ratio would be noise
                log(f"{label} {cls}: every layer already runs its {baseline} kernel; no second build timed")
                same.add(cls)
                continue
            base = other.export(workdir / f"{case.name}.{cls}.{baseline}.so")
            pairs[cls] = (library, base)
            for i in range(peers.sessions):
                own.append(Isolated(f"deepchip-{baseline}:{cls}#{i}", bench_peers.vm_timer, base, case.x))
                timers[own[-1].name] = own[-1]
    log(f"{label}: timing {len(timers)} contenders in turns, each in its own process")
    try:
        stats = fastest_sessions(interleaved_stats(timers, runs))
    finally:
        for timer in own:
            timer.close()
    one_process = {}
    for cls, (library, base) in pairs.items():  # after the turns: every other contender's process is gone
        log(f"{label} {cls}: default and {baseline} builds in one process, {runs // bench_peers.AB_CHUNK} pairs of turns")
        ab = Isolated(f"deepchip-ab:{cls}", bench_peers.vm_ab_timer, library, base, case.x)
        try:
            one_process[cls] = ab(max(runs // bench_peers.AB_CHUNK, 5))
        finally:
            ab.close()
    row = {"model": case.name, "sparsity": case.sparsity, "scheme": case.scheme, "peers": {k: v for k, v in stats.items() if ":" not in k},
           "classes": {}}
    if lce_check:
        row["lce"] = lce_check
    for cls, (qmodel, compiled, shapes) in built.items():
        ours = bench_peers.vm_output(compiled.executable, case.x)
        ref = oracle.run(qmodel, case.x)
        os.environ[isa.X86_SWITCH] = cls
        try:
            layers = per_layer(qmodel, compiled, shapes, runs)
        finally:
            os.environ.pop(isa.X86_SWITCH, None)
        totals = compiled.report.totals()
        base = {} if not baseline else {"baseline_format": baseline, "baseline_same": True} if cls in same else {
            "baseline_format": baseline, "baseline": stats[f"deepchip-{baseline}:{cls}"],
            "baseline_one_process": one_process[cls]}
        row["classes"][cls] = {
            **stats[f"deepchip:{cls}"], **base,
            "weight_bytes": totals["weight_bytes"], "fp32_weight_bytes": totals["fp32_weight_bytes"],
            "ternary_vs_entropy": totals["ternary_vs_entropy"],
            "schedules": compiled.report.schedules, "tuning_log": compiled.report.tuning_log,
            "layers": layers, "layer_stat": {"fastest": LAYER_ROUNDS * LAYER_REPEATS, "rounds": LAYER_ROUNDS},
            "report": compiled.report.layers,
            "argmax_agrees_with_ort": bool(ours.argmax() == ref.argmax()),
            "max_abs_diff_vs_ort": float(np.abs(ours - ref).max()),
        }
        log(f"{label} {cls}: deepchip {stats[f'deepchip:{cls}']['ms']:.3f} ms; "
            + ", ".join(f"{k} {v['ms']:.3f}" for k, v in row["peers"].items()))
    return row


def machine():
    from tvm_deepchip import isa

    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    flags = next((l.split(":", 1)[1].split() for l in open("/proc/cpuinfo") if l.startswith("flags")), [])
    return {"cpu": cpu, "llvm_cpu": isa.host_cpu(), "host_class": isa.host_class().name, "cores": os.cpu_count(),
            "isa": [f for f in ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni") if f in flags],
            "python": platform.python_version()}


def stored_sections(store: Path) -> dict:
    """The sections already in BENCHMARKS.json (one per ISA class)."""
    return json.loads(store.read_text())["sections"] if store.is_file() else {}


def section_key(cls: str, host: str) -> str:
    """A class measured on a machine of its own class is that class's section; a lower class built
    on a bigger CPU (AVX2 on an AVX-512 host) is a section of its own, beside it."""
    return cls if cls == host else f"{cls} on {host}"


def host_note(cls: str, host: str) -> str | None:
    if cls == host:
        return None
    return (f"built for {cls} on a {host} machine: our kernels use only {cls}'s instructions, the peers "
            f"(onnxruntime, OpenVINO) use the host's, so these ratios understate what a {cls} user sees; "
            f"the `{cls}` section, measured on a {cls} machine, is that class's figure of record")


def default_classes() -> list[str]:
    """AVX2 (every x86 user's floor) and this CPU's own class, if it is another."""
    from tvm_deepchip import isa

    return list(dict.fromkeys(["x86-avx2", isa.host_class().name]))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=[*bench_models.NETWORKS, bench_models.DIGITS, *bench_models.SMALL])
    ap.add_argument("--sparsity", nargs="+", type=float, default=[0.9, 0.95])
    ap.add_argument("--schemes", nargs="+", default=["ternary"], choices=["ternary", "bwn", "xnor"],
                    help="quantizer schemes; bwn / xnor add the paper's networks with binary weights / and activations")
    ap.add_argument("--classes", nargs="+", default=None, help="x86 ISA classes to build (default: AVX2 and this CPU's)")
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--sessions", type=int, default=3, help="processes per contender; the fastest counts")
    ap.add_argument("--baseline-format", default="sparse",
                    help="also time our builds with every ternary layer in this format, in the same turns "
                         "(the format the default replaced); 'none' to skip")
    ap.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"))
    ap.add_argument("--steady-ns", type=float, default=200.0,
                    help="before each model, wait for a core-to-core round trip under this, or within "
                         f"{STEADY_SPREAD}x of the run's lowest (see settle)")
    ap.add_argument("--settle-s", type=float, default=300.0, help="... for at most this many seconds a model")
    args = ap.parse_args(argv)
    os.environ.setdefault("TVM_NUM_THREADS", str(THREADS))
    from tvm_deepchip import isa

    if not Path(args.out).parent.is_dir():
        ap.error(f"--out {args.out}: no directory {Path(args.out).parent}")
    classes = args.classes or default_classes()
    for cls in classes:
        if not isa.runs_here(isa.get(cls)):
            ap.error(f"--classes {cls}: this CPU ({isa.host_cpu()}) cannot run it")
    if args.sessions < 1:
        ap.error(f"--sessions {args.sessions}: at least 1")
    if args.steady_ns <= 0 or args.settle_s < 0:
        ap.error(f"--steady-ns {args.steady_ns} / --settle-s {args.settle_s}: a positive bound, a wait of 0 or more")
    workdir = Path(tempfile.mkdtemp(prefix="deepchip-bench-"))
    run = {"machine": machine(), "command": "python3 scripts/bench.py " + " ".join(argv or sys.argv[1:]),
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "threads": THREADS, "runs": args.runs,
           "sessions": args.sessions, "steady_ns": args.steady_ns, "settle_s": args.settle_s,
           "retries": RETRIES, "steady_spread": STEADY_SPREAD}
    log(f"machine: {run['machine']}")
    run["peaks"] = {cls: peaks(cls) for cls in classes}
    log(f"peaks: {run['peaks']}")
    run["round_trip_ns"] = [core_round_trip()]
    log(f"core-to-core round trip: {run['round_trip_ns'][0]} ns")
    larq_python = None
    if "xnor" in args.schemes:
        larq_python, why = bench_larq.available()
        if not larq_python:
            log(f"Larq Compute Engine peer skipped: {why}")
    peers = Peers(workdir, args.sessions)
    try:
        baseline = None if args.baseline_format == "none" else args.baseline_format
        rows, seen = [], list(run["round_trip_ns"])
        for case in bench_models.cases(args.models, args.sparsity, args.schemes):
            for attempt in range(1 + RETRIES):  # again where the host's phase changed during the turns
                before = settle(args.settle_s, args.steady_ns, seen)
                row = bench_case(case, classes, args.runs, peers, workdir, baseline, larq_python)
                after = round_trip_seen(seen)
                if after is None or after <= steady_bound(args.steady_ns, seen) or attempt == RETRIES:
                    break
                log(f"core-to-core round trip {after:.0f} ns after the turns: measuring {case.name} "
                    f"({case.scheme}, sparsity {case.sparsity}) again")
            rows.append({**row, "round_trip_ns": [before, after]})
    finally:
        peers.close()
    run["round_trip_ns"].append(core_round_trip())
    log(f"core-to-core round trip: {run['round_trip_ns'][-1]} ns")
    out = Path(args.out)
    store = out.with_suffix(".json")
    sections = stored_sections(store)
    for cls in classes:  # this run's section of each class it measured; other sections are kept
        sections[section_key(cls, run["machine"]["host_class"])] = {
            **run, "class": cls, "peaks": run["peaks"][cls], "note": host_note(cls, run["machine"]["host_class"]),
            "rows": [{**{k: v for k, v in r.items() if k != "classes"}, **r["classes"][cls]} for r in rows]}
    store.write_text(json.dumps({"sections": sections}, indent=1))
    from bench_report import write_report

    write_report(sections, out)
    log(f"wrote {out}, {store} and {out.with_name('bench.png')}")


if __name__ == "__main__":
    main()
