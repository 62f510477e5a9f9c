"""Wall-clock timing of a Python callable: median of runs after warm-up (what the demo, the
sweep and the benchmark report; TVM's time evaluator times single kernels)."""
from __future__ import annotations

import time

import numpy as np


def median_ms(fn, runs: int = 50, warmup: int = 5) -> float:
    for _ in range(min(warmup, runs)):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))
