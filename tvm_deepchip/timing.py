"""Wall-clock timing of a Python callable: median of runs after warm-up (what the demo, the
sweep and the benchmark report; TVM's time evaluator times single kernels)."""
from __future__ import annotations

import time

import numpy as np


def run_times(fn, runs: int) -> list[float]:
    """Seconds of each of `runs` calls (no warm-up)."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def median_ms(fn, runs: int = 50, warmup: int = 5) -> float:
    for _ in range(min(warmup, runs)):
        fn()
    return 1e3 * float(np.median(run_times(fn, runs)))


def interleaved_stats(timers: dict, runs: int, rounds: int = 5) -> dict:
    """Each peer's median ms over `runs` runs taken in `rounds` turns (peer A, B, C, A, B, C...):
    on a shared machine a burst of noise then falls on every peer, not on whichever ran during
    it. `timers[name](n)` runs n times and returns the n durations in seconds. Returns
    name -> {"ms": median of all runs, "block_ms": [median of each turn]} (their spread is the
    run's noise)."""
    samples = {name: [] for name in timers}
    per = max(1, runs // rounds)
    for name, t in timers.items():  # warm-up
        t(min(5, per))
    for _ in range(rounds):
        for name, t in timers.items():
            samples[name].append(list(t(per)))
    return {name: {"ms": 1e3 * float(np.median(np.concatenate(blocks))),
                   "block_ms": [1e3 * float(np.median(b)) for b in blocks]}
            for name, blocks in samples.items()}


def fastest_sessions(stats: dict, sep: str = "#") -> dict:
    """Fold the stats of several sessions of one contender (`name#0`, `name#1`, ...: each its own
    process, hence its own memory layout) into one entry per contender: the fastest session's
    stats, with every session's median in "session_ms". A runtime's speed can differ between
    process instances far more than within one (onnxruntime FP32 on a 2-core VM: 0.64-1.03 ms for
    the same model, each stable within its process), so one session samples one layout; the
    fastest of several is what a user who restarts gets, and it is the harder figure to beat."""
    groups: dict = {}
    for key, stat in stats.items():
        groups.setdefault(key.split(sep, 1)[0], []).append(stat)
    return {name: {**min(group, key=lambda st: st["ms"]), "session_ms": sorted(st["ms"] for st in group)}
            for name, group in groups.items()}
