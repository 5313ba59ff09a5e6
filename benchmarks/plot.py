"""The benchmark's figure: accuracy against training time for both networks, and cost ratios with the 1.5× floor."""
from __future__ import annotations

from typing import Any, Dict, List

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from benchmarks.networks import BASELINE, LABELS, MSA2  # noqa: E402
from benchmarks.report import COST_FLOOR  # noqa: E402

COST_RATIOS = [("step_time", "train step"), ("flops", "FLOPs"), ("parameters", "params"),
               ("peak_memory", "peak mem"), ("feature_map_estimate", "planner est."),
               ("prediction_time", "prediction")]


def _ratio(entry: Any):
    return entry.get("ratio") if isinstance(entry, dict) else entry


def plot(results: List[Dict[str, Any]], path: str, title: str = "") -> None:
    """Left: foreground Dice vs training time at the equal budget (one colour per plan, circle nnU-Net, square MSA2).
    Right: MSA2/nnU-Net cost ratios per plan, dashed line at the 1.5× floor."""
    fig, (ax_acc, ax_cost) = plt.subplots(1, 2, figsize=(14, 5.5), gridspec_kw={"width_ratios": [1, 1.6]})
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    any_acc = False
    for i, r in enumerate(results):
        res = (r.get("accuracy") or {}).get("results") or {}
        if BASELINE not in res or MSA2 not in res:
            continue
        any_acc = True
        c = colors[i % len(colors)]
        xs = [res[BASELINE]["training_time_s"], res[MSA2]["training_time_s"]]
        ys = [res[BASELINE]["foreground_dice"], res[MSA2]["foreground_dice"]]
        ax_acc.plot(xs, ys, "-", color=c, alpha=0.5)
        ax_acc.plot(xs[0], ys[0], "o", color=c, label=f"{r['plan']} {LABELS[BASELINE]}")
        ax_acc.plot(xs[1], ys[1], "s", color=c, label=f"{r['plan']} {LABELS[MSA2]}")
    ax_acc.set_xlabel("training time at equal budget (s, sum of nnU-Net's epoch times)")
    ax_acc.set_ylabel("foreground Dice (nnU-Net validation, fold 0)")
    ax_acc.set_title("accuracy vs training time")
    if any_acc:
        ax_acc.legend(fontsize=7)
    else:
        ax_acc.text(0.5, 0.5, "accuracy not measured\n(--skip-accuracy)", ha="center", va="center",
                    transform=ax_acc.transAxes)
    width = 0.8 / max(1, len(COST_RATIOS))
    for j, (key, label) in enumerate(COST_RATIOS):
        xs, ys = [], []
        for i, r in enumerate(results):
            v = _ratio(r.get("ratios", {}).get(key))
            if v is not None:
                xs.append(i + (j - (len(COST_RATIOS) - 1) / 2) * width)
                ys.append(v)
        if not ys:
            continue
        bars = ax_cost.bar(xs, ys, width, label=label, color=colors[j % len(colors)])
        for b, v in zip(bars, ys):
            ax_cost.annotate(f"{v:.1f}", (b.get_x() + b.get_width() / 2, v), ha="center", va="bottom", fontsize=6)
    ax_cost.axhline(COST_FLOOR, color="red", linestyle="--", linewidth=1.2, label=f"{COST_FLOOR}× floor")
    ax_cost.axhline(1.0, color="black", linewidth=0.6)
    ax_cost.set_xticks(range(len(results)))
    ax_cost.set_xticklabels([f"{r['plan']}\n(batch {r.get('batch_size')})" for r in results], fontsize=8)
    ax_cost.set_ylabel(f"{LABELS[MSA2]} / {LABELS[BASELINE]}")
    ax_cost.set_title("cost ratios (median)")
    ax_cost.legend(fontsize=7, ncol=2)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
