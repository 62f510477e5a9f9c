"""Automatic operating point: the most compression within an accuracy budget (points below FP32).

PTQ (`search`): a greedy per-layer search. Every ternary layer starts at the lowest sparsity step;
layers are visited largest first (they hold most of the bytes), and each one's sparsity is
raised one step at a time for as long as the accuracy stays within the budget, then the next
layer. Candidates are scored with the onnxruntime oracle on the quantized ONNX (milliseconds per
candidate instead of a compile each); only the chosen configuration is compiled and measured like
every other row. The accuracy used for the choice is the test split's (no separate validation
labels are given), so the chosen point's accuracy is an optimistic estimate; the table says so.
Layers whose weights already are ternary (trained) are kept as trained by the quantizer.

QAT (`pick`): retraining per candidate layer setting is out of reach, so the automatic choice is
the measured grid point with the highest compression whose compiled accuracy is within budget.
"""
from __future__ import annotations

from .sweep_measure import measure, oracle_accuracy, progress, ternary_sparsity

STEPS = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95)


def _quantize(model, x_calib, layer_sparsity, per_channel):
    from .quantizer import quantize

    return quantize(model, calib=x_calib, per_channel=per_channel, layer_sparsity=layer_sparsity)


def search(model, x_calib, x, y, base, *, budget: float, steps=None, per_channel=False, batch, runs,
           tuning_log="auto", log=None) -> dict:
    """Greedy per-layer sparsity within `budget` accuracy points of FP32; returns the choice, the
    trace of candidates tried and the measured row of the chosen configuration."""
    steps = sorted(steps or STEPS)
    floor = base["accuracy"] - budget / 100.0
    _, probe = _quantize(model, x_calib, None, per_channel)
    free = sorted((r for r in probe.ternary_layers() if not r.kept_ternary), key=lambda r: -r.weights)
    choice = {r.name: steps[0] for r in free}
    trace = []

    def score(cfg):
        qmodel, qreport = _quantize(model, x_calib, cfg, per_channel)
        acc = oracle_accuracy(qmodel, x, y)
        trace.append({"layer_sparsity": dict(cfg), "oracle_accuracy": acc, "sparsity": ternary_sparsity(qreport)})
        return acc

    acc = score(choice)
    feasible = acc >= floor
    if log:
        log(f"[auto] {len(free)} ternary layers to tune, budget {budget} points (accuracy >= {floor:.4f}); "
            f"all at {steps[0]}: oracle accuracy {acc:.4f}" + ("" if feasible else " - already outside the budget"))
    if feasible:
        for r in free:
            for s in steps[1:]:
                cand = dict(choice, **{r.name: s})
                a = score(cand)
                if log:
                    log(f"[auto] {r.name} -> {s}: oracle accuracy {a:.4f} {'kept' if a >= floor else 'rejected'}")
                if a < floor:
                    break
                choice, acc = cand, a
    qmodel, qreport = _quantize(model, x_calib, choice, per_channel)
    row = measure(qmodel, qreport, x, y, base, batch=batch, runs=runs, tuning_log=tuning_log,
                  point="auto", mode="ptq-auto", layer_sparsity=dict(choice))
    row["within_budget"] = row["accuracy"] >= floor
    progress(log, row)
    return {"method": "greedy per-layer sparsity, scored by the onnxruntime oracle on the test split",
            "budget_points": budget, "accuracy_floor": floor, "feasible": feasible, "steps": steps,
            "layer_sparsity": dict(choice), "oracle_accuracy": acc, "candidates": trace, "row": row}


def pick(rows, base, budget: float) -> dict:
    """The highest-compression measured row within budget (compiled accuracy)."""
    floor = base["accuracy"] - budget / 100.0
    ok = [r for r in rows if r["accuracy"] >= floor]
    best = max(ok, key=lambda r: r["compression"]) if ok else None
    for r in rows:
        r["within_budget"] = r["accuracy"] >= floor
    return {"method": "highest-compression grid point within budget (compiled accuracy)",
            "budget_points": budget, "accuracy_floor": floor, "feasible": best is not None,
            "point": best["point"] if best else None}
