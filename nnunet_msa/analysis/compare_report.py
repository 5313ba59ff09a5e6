"""What ``nnunet-msa compare`` reports for two trainers' per-case Dice on the same cases: the paired difference
B − A of the mean foreground Dice per case with its bootstrap interval, the same per label or region, how many cases
B wins, the cost from the training logs, a one-line verdict, a table, a JSON dict and a plot."""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from nnunet_msa.analysis.case_scores import CaseScores
from nnunet_msa.analysis.paired_bootstrap import Difference, paired_difference


#: fewer cases than this give no verdict: a percentile bootstrap over one case has an interval of width 0
MIN_CASES_FOR_VERDICT = 2
#: below this many cases the verdict line says that the interval is rough
FEW_CASES = 10


def _paired_columns(a: np.ndarray, b: np.ndarray):
    """Rows (cases) where both are finite."""
    keep = np.isfinite(a) & np.isfinite(b)
    return a[keep], b[keep], keep


def compare_scores(name_a: str, name_b: str, a: CaseScores, b: CaseScores, names: Dict[str, str],
                   n_boot: int = 10000, blocks: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """The comparison of two ``CaseScores`` over the same cases (``a.cases == b.cases``)."""
    assert a.cases == b.cases and a.keys == b.keys
    ma, mb, keep = _paired_columns(a.mean_foreground(), b.mean_foreground())
    if ma.size == 0:
        raise ValueError("no case has a foreground label in its reference or either prediction")
    kept_blocks = None if blocks is None else [blk for blk, k in zip(blocks, keep) if k]
    diff: Difference = paired_difference(mb, ma, n_boot=n_boot, blocks=kept_blocks)
    per_case = mb - ma
    cases = [c for c, k in zip(a.cases, keep) if k]
    labels = []
    for j, key in enumerate(a.keys):
        la, lb, lkeep = _paired_columns(a.dice[:, j], b.dice[:, j])
        if la.size == 0:
            labels.append({"key": key, "name": names.get(key, key), "n_cases": 0})
            continue
        lblocks = None if blocks is None else [blk for blk, k in zip(blocks, lkeep) if k]
        d = paired_difference(lb, la, n_boot=n_boot, blocks=lblocks)
        labels.append({"key": key, "name": names.get(key, key), "n_cases": int(la.size), "dice_a": float(la.mean()),
                       "dice_b": float(lb.mean()), "difference": d.mean, "low": d.low, "high": d.high,
                       "verdict": d.verdict if la.size >= MIN_CASES_FOR_VERDICT else "no difference shown"})
    verdict = diff.verdict if ma.size >= MIN_CASES_FOR_VERDICT else "no difference shown"
    return {"trainer_a": name_a, "trainer_b": name_b, "n_cases": int(ma.size),
            "left_out_cases": [c for c, k in zip(a.cases, keep) if not k],
            "dice_a": float(ma.mean()), "dice_b": float(mb.mean()), "difference": diff.mean, "low": diff.low,
            "high": diff.high, "level": diff.level, "verdict": verdict,
            "bootstrap": "folds as blocks, then cases" if blocks is not None and len(set(blocks)) > 1 else "cases",
            "b_wins": int((per_case > 0).sum()), "ties": int((per_case == 0).sum()), "a_wins": int((per_case < 0).sum()),
            "per_case": {c: {"dice_a": float(x), "dice_b": float(y)} for c, x, y in zip(cases, ma, mb)},
            "per_label": labels}


def verdict_line(result: Dict[str, Any]) -> str:
    """``"B is ahead: +0.0123 [+0.0040, +0.0210] over 50 cases"`` (or behind, or no difference shown)."""
    b, n = result["trainer_b"], result["n_cases"]
    interval = f"{result['difference']:+.4f} [{result['low']:+.4f}, {result['high']:+.4f}]"
    lead = {"ahead": f"{b} is ahead", "behind": f"{b} is behind",
            "no difference shown": f"No difference shown between {b} and {result['trainer_a']}"}[result["verdict"]]
    caveat = ""
    if n < MIN_CASES_FOR_VERDICT:
        caveat = f" (only {n} case: no interval, no verdict; compare more cases)"
    elif n < FEW_CASES:
        caveat = f" (only {n} cases: the interval is rough; five folds of a real dataset give many more)"
    return (f"{lead}: {interval} mean foreground Dice (B - A, {int(result['level'] * 100)} % bootstrap interval) "
            f"over {n} cases; B wins {result['b_wins']}, A wins {result['a_wins']}, {result['ties']} tied.{caveat}")


def table(result: Dict[str, Any]) -> str:
    """Markdown table: the mean and each label or region."""
    a, b = result["trainer_a"], result["trainer_b"]
    rows = [f"| | cases | {a} (A) | {b} (B) | B − A [95 % CI] | |", "|---|---|---|---|---|---|",
            f"| mean foreground Dice | {result['n_cases']} | {result['dice_a']:.4f} | {result['dice_b']:.4f} | "
            f"{result['difference']:+.4f} [{result['low']:+.4f}, {result['high']:+.4f}] | {result['verdict']} |"]
    for lab in result["per_label"]:
        if not lab["n_cases"]:
            rows.append(f"| {lab['name']} ({lab['key']}) | 0 | – | – | – | absent everywhere |")
            continue
        rows.append(f"| {lab['name']} ({lab['key']}) | {lab['n_cases']} | {lab['dice_a']:.4f} | {lab['dice_b']:.4f} | "
                    f"{lab['difference']:+.4f} [{lab['low']:+.4f}, {lab['high']:+.4f}] | {lab['verdict']} |")
    cost = result.get("cost")
    if cost:
        rows.append("")
        rows.append(cost["text"])
    return "\n".join(rows)


def cost_summary(name_a: str, name_b: str, times_a: List[float], times_b: List[float], hardware_a: List[str],
                 hardware_b: List[str]) -> Dict[str, Any]:
    """Mean epoch time of each trainer from its logs, their ratio, and the caveat when they ran on other hardware."""
    out: Dict[str, Any] = {"epoch_s_a": float(np.mean(times_a)) if times_a else None,
                           "epoch_s_b": float(np.mean(times_b)) if times_b else None,
                           "epochs_a": len(times_a), "epochs_b": len(times_b),
                           "hardware_a": hardware_a, "hardware_b": hardware_b}
    if times_a and times_b:
        out["ratio_b_to_a"] = out["epoch_s_b"] / out["epoch_s_a"]
        text = (f"Cost: mean epoch {out['epoch_s_a']:.1f} s ({name_a}, {len(times_a)} epochs) and "
                f"{out['epoch_s_b']:.1f} s ({name_b}, {len(times_b)} epochs): B takes {out['ratio_b_to_a']:.2f}x A's time.")
    else:
        text = "Cost: no epoch times in the training logs."
    if hardware_a and hardware_b and set(hardware_a) != set(hardware_b):
        text += (f" Caveat: they ran on different hardware (A: {'; '.join(hardware_a)}; B: {'; '.join(hardware_b)}),"
                 f" so the ratio is not the trainers' alone.")
    elif len(set(hardware_a) | set(hardware_b)) > 1:
        text += " Caveat: the folds ran on more than one machine."
    out["text"] = text
    return out


def plot(result: Dict[str, Any], path: str) -> None:
    """Per-case differences B − A sorted, the mean and its interval."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    diffs = sorted(v["dice_b"] - v["dice_a"] for v in result["per_case"].values())
    fig, ax = plt.subplots(figsize=(max(4.0, min(12.0, 0.12 * len(diffs) + 3)), 3.2))
    ax.bar(range(len(diffs)), diffs, color=["tab:green" if d > 0 else "tab:red" for d in diffs])
    ax.axhspan(result["low"], result["high"], color="tab:blue", alpha=0.2, label="95 % interval of the mean")
    ax.axhline(result["difference"], color="tab:blue", label=f"mean {result['difference']:+.4f}")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xlabel("cases, sorted")
    ax.set_ylabel("Dice B − A")
    ax.set_title(f"{result['trainer_b']} − {result['trainer_a']}: {result['verdict']}", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
