"""Compile report: which layer became which primitive, weight bytes, compression against FP32."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from .layer_plan import FLOAT_PRIMITIVE


@dataclass
class CompileReport:
    target: str = ""
    layers: list = field(default_factory=list)  # rows of layer_plan.LayerPlan, one per layer
    schedules: dict = field(default_factory=dict)  # PrimFunc name -> "tuned" | "default"
    tuning_log: str | None = None  # the database applied, or "<path> (ignored)"

    @classmethod
    def of(cls, target: str, plan, scheduled) -> CompileReport:
        """The report of a build: its target's description, the plan's rows (layer_plan) and
        what the schedule phase did (schedule_apply.Scheduled)."""
        return cls(target, plan.rows(), dict(scheduled.schedules), scheduled.tuning_log)

    def __len__(self) -> int:
        return len(self.layers)

    def totals(self) -> dict:
        """Over every layer: float layers count with the float32 weight TVM's kernel reads."""
        lowered = [r for r in self.layers if r["primitive"] != FLOAT_PRIMITIVE]
        fp32 = sum(r["fp32_bytes"] for r in self.layers)
        ours = sum(r["weight_bytes"] for r in self.layers)
        ternary = [r for r in lowered if r.get("entropy_bytes") is not None]
        t_bytes, t_bound = sum(r["weight_bytes"] for r in ternary), sum(r["entropy_bytes"] for r in ternary)
        return {
            "layers_lowered": len(lowered),
            "layers_float": len(self.layers) - len(lowered),
            "fp32_weight_bytes": fp32,
            "weight_bytes": ours,
            "compression": fp32 / ours if ours else None,
            "ternary_weight_bytes": t_bytes,
            "ternary_entropy_bytes": t_bound,
            "ternary_vs_entropy": t_bytes / t_bound if t_bound else None,
        }

    def to_json(self) -> str:
        return json.dumps(
            {"target": self.target, "tuning_log": self.tuning_log, "layers": self.layers, "schedules": self.schedules, "totals": self.totals()},
            indent=2,
            default=str,
        )

    def format(self) -> str:
        head = (f"{'layer':<24} {'op':<7} {'weights':<8} {'primitive':<26} {'shape':<20} {'bytes':>10} {'fp32':>10} "
                f"{'entropy':>9} {'x bound':>7}")
        lines = [f"target: {self.target}", head, "-" * len(head)]
        for r in self.layers:
            bound = r.get("entropy_bytes")
            vs = f"{bound:9.0f} {r['weight_bytes'] / bound:6.2f}x" if bound else f"{'':9} {'':7}"
            lines.append(
                f"{r['layer'][:24]:<24} {r['op']:<7} {r.get('kind', 'float'):<8} {r['primitive'][:26]:<26} "
                f"{str(r.get('shape', ''))[:20]:<20} {r.get('weight_bytes', ''):>10} {r.get('fp32_bytes', ''):>10} {vs}"
                + (f"  ({r['note']})" if r.get("note") else "")
            )
        t = self.totals()
        ratio = f"{t['compression']:.1f}x" if t["compression"] else "n/a"
        lines.append(
            f"total: {t['layers_lowered']} layers lowered, {t['layers_float']} left float; "
            f"weights {t['weight_bytes']} B vs FP32 {t['fp32_weight_bytes']} B ({ratio} smaller)"
        )
        if t["ternary_vs_entropy"]:
            lines.append(f"ternary layers: {t['ternary_weight_bytes']} B read at run time, entropy bound "
                         f"{t['ternary_entropy_bytes']:.0f} B ({t['ternary_vs_entropy']:.2f}x the bound)")
        if self.schedules:
            kinds = {}
            for how in self.schedules.values():
                kinds[how] = kinds.get(how, 0) + 1
            lines.append("schedules: " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())))
        if self.tuning_log:
            lines.append(f"tuning log: {self.tuning_log}")
        return "\n".join(lines)
