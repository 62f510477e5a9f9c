"""Per-layer kernel format: time every format of each ternary layer on the target, keep the
fastest, and record the choice (tuning_logs/<target>/formats.json) so compile reproduces it."""
from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np

from . import parallel_launch, primitives, targets
from .primitives import column_lists
from .compiler import layer_key, lower
from .formats import KERNEL_FORMATS
from .tuning_db import FORMATS

log = logging.getLogger(__name__)


def layer_module(layer, in_shape, fmt, target):
    """One layer as a scheduled PrimFunc module (our default schedule) and its lowering, the
    int8 kernels reading their input codes in the type the target's ISA class feeds them (as the
    build does: int16 pairs on AVX2, uint8 for VNNI, int8 for sdot)."""
    import tvm

    from tvm_deepchip import isa
    from tvm_deepchip.schedules import apply_default_schedules

    cls = isa.classify(target)
    lowered = primitives.lower_layer(layer, in_shape, fmt, cls)
    mod = tvm.IRModule({"main": primitives.prim_func(lowered)})
    return apply_default_schedules(mod, target), lowered


def layer_timer(layer, in_shape, fmt, preset):
    """One layer in `fmt` built for this machine (x86 presets), on the parallel launcher a
    compiled model runs on (parallel_launch), with random inputs: `timer(number, repeat)` ->
    the `repeat` means of `number` runs each, in microseconds."""
    import tvm

    target = targets.tvm_target(preset)
    mod, lowered = layer_module(layer, in_shape, fmt, target)
    lib = parallel_launch.load(tvm.tirx.build(mod, target=target))
    dev = tvm.cpu()
    args = [tvm.runtime.tensor(timing_input(layer, lowered), dev)]
    args += [tvm.runtime.tensor(c, dev) for c in lowered.consts]
    args.append(tvm.runtime.empty(list(lowered.out_shape), lowered.out_dtype, dev))
    return lambda number, repeat: [1e6 * t for t in lib.time_evaluator("main", dev, number=number, repeat=repeat)(*args).results]


def timing_input(layer, lowered) -> np.ndarray:
    """Random input codes of the kernel's type (8-bit codes, or packed bits: XNOR); half of them
    zero where the layer's zero codes are zero values (a ReLU's output: column_lists skips them;
    SVHN ConvNet's inner layers read 25-56% zeros on the bench's input)."""
    rng = np.random.default_rng(0)
    info = np.iinfo(lowered.in_dtype)
    q = rng.integers(info.min, info.max + 1, size=lowered.in_shape).astype(lowered.in_dtype)
    if column_lists.zero_skipping(layer) and lowered.in_dtype == "uint8":
        q[rng.random(q.shape) < 0.5] = 0
    return q


def time_layer(layer, in_shape, fmt, preset, number=20, repeat=5, best=False) -> float:
    """Median microseconds of one layer in `fmt` on this machine (layer_timer); `best`: the
    fastest of the `repeat` means instead (what the kernel takes when nothing else runs)."""
    results = layer_timer(layer, in_shape, fmt, preset)(number, repeat)
    return float(min(results) if best else np.median(results))


def choose_formats(model, target, out_dir: Path, candidates=KERNEL_FORMATS, input_shapes=None) -> dict:
    """Measure each ternary layer of `model` in every candidate format on `target` (a
    targets.BuildTarget); write formats.json."""
    preset = target.preset
    if preset.cross_compiler:
        raise NotImplementedError("format choice measures locally; run it on x86 or use --format per layer")
    plan = lower(model, target, input_shapes=input_shapes).plan
    rows = {}
    ternary = [(ly, shp) for ly, shp in plan.lowered_layers() if ly.weight_kind == "ternary"]
    for i, (layer, in_shape) in enumerate(ternary, 1):
        times = {}
        for fmt in [f for f in candidates if f in primitives.formats_for(layer, in_shape)]:
            try:
                times[fmt] = time_layer(layer, in_shape, fmt, preset)
            except Exception as err:  # a format that cannot build this layer is skipped, with why
                log.warning("layer %s: format %s skipped: %s", layer.name, fmt, str(err).splitlines()[0][:200])
        best = min(times, key=times.get)
        rows[layer_key(layer)] = {"layer": layer.name, "format": best, "times_us": times}
        summary = ", ".join(f"{k} {v:.1f}" for k, v in times.items())
        print(f"[formats {i}/{len(ternary)}] {layer.name}: {summary} us -> {best}", file=sys.stderr, flush=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / FORMATS
    old = json.loads(path.read_text()) if path.is_file() else {}
    old.update(rows)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(old, indent=1, sort_keys=True))
    tmp.replace(path)
    return rows
