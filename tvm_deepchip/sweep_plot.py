"""Trade-off plots of a sweep (matplotlib, Agg backend: no display needed), written as PNG.

accuracy vs compression (run-time weight bytes against FP32) and accuracy vs speed-up (x86 latency
against onnxruntime FP32 on the same machine, same batch). The FP32 accuracy is a dashed line and,
when an automatic search ran, the accuracy floor of its budget a dotted one.
"""
from __future__ import annotations

from pathlib import Path

from .output_paths import atomic_file

STYLE = {"ptq": ("o", "tab:blue"), "qat": ("s", "tab:green"), "ptq-auto": ("*", "tab:red")}


def _plot(result: dict, xkey: str, xlabel: str, title: str, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    base, rows = result["baseline"], result["rows"]
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=110)
    for mode in sorted({r["mode"] for r in rows}):
        pts = sorted((r for r in rows if r["mode"] == mode), key=lambda r: r[xkey])
        marker, color = STYLE.get(mode, ("^", "tab:purple"))
        ax.plot([r[xkey] for r in pts], [100 * r["accuracy"] for r in pts], marker=marker, color=color,
                linestyle="-" if mode != "ptq-auto" else "none", markersize=9 if mode == "ptq-auto" else 6,
                label=f"{mode} (compiled x86)")
        for r in pts:
            ax.annotate(r["point"].split(" ", 1)[-1], (r[xkey], 100 * r["accuracy"]), textcoords="offset points",
                        xytext=(4, 4), fontsize=7)
    ax.axhline(100 * base["accuracy"], color="black", linestyle="--", linewidth=1,
               label=f"FP32 onnxruntime {100 * base['accuracy']:.1f}%")
    auto = result.get("auto")
    if auto:
        ax.axhline(100 * auto["accuracy_floor"], color="tab:red", linestyle=":", linewidth=1,
                   label=f"budget: FP32 - {auto['budget_points']:g} points")
    chosen = [r for r in rows if auto and r["point"] == auto.get("point")]
    if chosen:  # the automatic choice among grid points (qat)
        ax.plot([chosen[0][xkey]], [100 * chosen[0]["accuracy"]], marker="o", markersize=14, markerfacecolor="none",
                markeredgecolor="tab:red", linestyle="none", label=f"auto pick: {chosen[0]['point']}")
    ax.plot([base[xkey]], [100 * base["accuracy"]], marker="D", color="black", linestyle="none")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def plot(result: dict, out_dir) -> dict[str, Path]:
    """Write accuracy_vs_compression.png and accuracy_vs_speedup.png into `out_dir`."""
    out = Path(out_dir)
    name = Path(result["options"]["model"]).name
    return {
        "accuracy_vs_compression": _plot(result, "compression", "weight compression vs FP32 (run-time bytes, x)",
                                         f"{name}: accuracy vs compression", out / "accuracy_vs_compression.png"),
        "accuracy_vs_speedup": _plot(result, "speedup", "speed-up vs onnxruntime FP32 (x86 latency, x)",
                                     f"{name}: accuracy vs speed-up", out / "accuracy_vs_speedup.png"),
    }
