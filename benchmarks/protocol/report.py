"""The protocol's report from its records: a markdown table, a JSON summary and a plot of Dice against training time.

Rows are (trainer, network signature, iterations). A record whose signature is not the trainer's current one (its
options changed since) is shown as ``trainer@<signature>`` so that earlier defaults stay comparable. Scores are the
per-case mean Dice over the foreground labels; differences are paired by case against nnU-Net's default
(``bootstrap.paired_difference``), at the same iterations and at the same training time
(``bootstrap.interpolate_budgets`` over nnU-Net's budgets).

Time is the **load-free** training time: epochs × the 10th percentile of the row's epoch times pooled over its seeds
(``Row.load_free_time``). Runs share 2 cores with whatever else runs (tests, other jobs), and load only ever adds
time, so the fastest epochs of a row are its speed on an idle machine; the sum of a run's epoch times (the record's
``training_time_s``, shown as "training s, as run") is kept beside it. The time ratio, the equal-time comparison and
the plot use the load-free time.

Times are compared only between rows trained on the same CPU model (``Row.cpus``, the records' ``machine.cpu_model``;
records made before 2026-12-05 do not have it and count as one machine, ``UNRECORDED_CPU``): the machines these runs
get differ by up to 2.6× in speed, so a row timed on another CPU than nnU-Net's rows gets no time ratio, no
equal-time difference and no point in the plot, and the table says which run would make it comparable.
"""
from __future__ import annotations

import glob
import json
import os
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from benchmarks.protocol.bootstrap import interpolate_budgets, paired_difference
from benchmarks.protocol.design import BASELINE, signature_hashes, trainer_names_by_signature


#: the epoch-time quantile that stands for an idle machine (``Row.load_free_time``)
LOAD_FREE_QUANTILE = 0.1
#: the CPU model of records written before the runner recorded it (all of them on one machine type)
UNRECORDED_CPU = "unrecorded (records before 2026-12-05)"


@dataclass
class Row:
    """All seeds of one (trainer, signature, iterations) on one plan."""

    label: str
    trainer: str
    iterations: int
    records: List[Dict[str, Any]] = field(default_factory=list)

    @property
    def seeds(self) -> List[int]:
        return sorted(r["key"]["seed"] for r in self.records)

    def by_seed(self) -> Dict[int, Dict[str, Any]]:
        return {r["key"]["seed"]: r for r in self.records}

    def scores(self, cases: List[str], seeds: Optional[List[int]] = None) -> np.ndarray:
        """(seeds, cases) per-case foreground mean Dice."""
        recs = self.by_seed()
        out = []
        for s in (seeds if seeds is not None else self.seeds):
            d = recs[s]["test_dice"]
            out.append([float(np.nanmean(list(d[c].values()))) for c in cases])
        return np.asarray(out)

    def class_means(self) -> Dict[str, List[float]]:
        """{label: [mean Dice over cases, per seed]}."""
        out: Dict[str, List[float]] = defaultdict(list)
        for r in sorted(self.records, key=lambda r: r["key"]["seed"]):
            per_label: Dict[str, List[float]] = defaultdict(list)
            for case in r["test_dice"].values():
                for label, v in case.items():
                    per_label[label].append(v)
            for label, vals in per_label.items():
                out[label].append(float(np.nanmean(vals)))
        return dict(out)

    @property
    def training_times(self) -> List[float]:
        return [float(r["training_time_s"]) for r in sorted(self.records, key=lambda r: r["key"]["seed"])]

    @property
    def mean_time(self) -> float:
        """Mean over seeds of the training time as run (every epoch, load included)."""
        return float(np.mean(self.training_times))

    @property
    def cpus(self) -> Tuple[str, ...]:
        """The CPU models this row's seeds were trained on (``UNRECORDED_CPU`` for records without one)."""
        return tuple(sorted({(r.get("machine") or {}).get("cpu_model") or UNRECORDED_CPU for r in self.records}))

    @property
    def load_free_time(self) -> float:
        """Epochs × the ``LOAD_FREE_QUANTILE`` quantile of the epoch times of all seeds (module docstring)."""
        times = [float(t) for r in self.records for t in r["epoch_times_s"]]
        epochs = float(np.mean([len(r["epoch_times_s"]) for r in self.records]))
        return epochs * float(np.quantile(times, LOAD_FREE_QUANTILE))


def load_rows(results_dir: str, plan: str, split_digest: Optional[str] = None) -> List[Row]:
    """Rows of every record of ``plan`` (of one split, if given)."""
    rows: Dict[Tuple[str, int], Row] = {}
    names = trainer_names_by_signature()
    for path in sorted(glob.glob(os.path.join(results_dir, plan, "*.json"))):
        with open(path) as f:
            rec = json.load(f)
        key = rec["key"]
        if split_digest is not None and key["split"] != split_digest:
            continue
        trainer = key["trainer"]
        # the trainer that has these options today (the first name of nnunet_msa.training's list, so the default's
        # name), with the recorded name beside it when that still has the same options
        known = names.get(key["signature"])
        if known is None:
            try:  # a name no class has (``+plannedRF``): itself if its options are still these
                current = key["signature"] in signature_hashes(trainer)
            except ValueError:
                current = False
            label = trainer if current else f"{trainer}@{key['signature']}"
        elif known == trainer:
            label = trainer
        else:
            try:
                same = key["signature"] in signature_hashes(trainer)
            except ValueError:
                same = False
            label = f"{known} (= {trainer})" if same else known
        rows.setdefault((label, key["iterations"]), Row(label, trainer, key["iterations"])).records.append(rec)
    return sorted(rows.values(), key=lambda r: (r.label != BASELINE, r.label, r.iterations))


def _fmt_ms(values: List[float]) -> str:
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{np.mean(values):.4f} ± {np.std(values, ddof=1):.4f}"


def compare(rows: List[Row], cases: List[str], n_boot: int = 10000) -> List[Dict[str, Any]]:
    """Per row: summary numbers and the paired differences to nnU-Net's default."""
    base = [r for r in rows if r.label == BASELINE]
    base_by_its = {r.iterations: r for r in base}
    out = []
    # nnU-Net's budgets for the equal-time comparison: the seeds every budget has
    common = sorted(set.intersection(*(set(r.seeds) for r in base))) if base else []
    base_times = [r.load_free_time for r in base]
    base_scores = [r.scores(cases, common) for r in base] if common else []
    base_cpus = tuple(sorted({c for r in base for c in r.cpus}))
    for row in rows:
        scores = row.scores(cases)
        fg = scores.mean(axis=1).tolist()
        entry: Dict[str, Any] = {
            "label": row.label, "trainer": row.trainer, "iterations": row.iterations, "seeds": row.seeds,
            "foreground_dice_per_seed": fg, "class_dice_per_seed": row.class_means(),
            "training_time_s_per_seed": row.training_times, "mean_training_time_s": row.mean_time,
            "load_free_training_time_s": row.load_free_time,
            "load_mean_per_seed": [r["load_during_training"]["mean"] for r in row.records],
            "cpus": list(row.cpus),
        }
        if base and row.label != BASELINE:
            same = base_by_its.get(row.iterations)
            timed_alike = set(row.cpus) <= set(base_cpus)
            if not timed_alike:
                entry["other_machine"] = True
                entry["equal_time_hint"] = (f"`{row.label}` was timed on {', '.join(row.cpus)}, nnU-Net on "
                                            f"{', '.join(base_cpus)}: no time ratio or equal-time difference; train "
                                            f"{BASELINE} on that CPU to compare times")
            if same is not None:
                entry["diff_equal_iterations"] = paired_difference(scores, same.scores(cases), n_boot).__dict__
                if timed_alike:
                    entry["time_ratio"] = row.load_free_time / same.load_free_time
            if base_scores and timed_alike:
                at = interpolate_budgets(base_times, base_scores, row.load_free_time)
                entry["diff_equal_time"] = (paired_difference(scores, at, n_boot).__dict__ if at is not None
                                            else None)
                if at is None:
                    longest = max(base, key=lambda r: r.load_free_time)
                    per_epoch = int(longest.records[0]["iterations_per_epoch"])
                    need = int(np.ceil(row.load_free_time / longest.load_free_time * longest.iterations / per_epoch)
                               * per_epoch)
                    entry["equal_time_hint"] = (f"nnU-Net's longest budget ({longest.iterations} its, "
                                                f"{longest.load_free_time:.0f} s load-free) is shorter than "
                                                f"{row.load_free_time:.0f} s: add --iterations {need} for {BASELINE}")
        out.append(entry)
    return out


def _fmt_diff(d: Optional[Dict[str, Any]]) -> str:
    if not d:
        return "–"
    return f"{d['mean']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}]"


def markdown_table(plan: str, entries: List[Dict[str, Any]], n_cases: int) -> str:
    labels = sorted({label for e in entries for label in e["class_dice_per_seed"]})
    head = (["trainer", "iterations", "seeds"] + [f"Dice {l}" for l in labels]
            + ["mean Dice", "training s, as run", "load-free s", "time / nnU-Net",
               "Δ vs nnU-Net, equal iterations [95 % CI]",
               "Δ vs nnU-Net, equal time [95 % CI]"])
    lines = [f"**{plan}** — {n_cases} held-back test cases; mean ± sd over seeds; Δ: paired per-case difference of "
             f"the mean foreground Dice, bootstrap over cases and seeds; time: load-free (epochs × 10th percentile of the "
             f"epoch times), the ratio and the equal-time column use it", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for e in entries:
        cells = [f"`{e['label']}`", str(e["iterations"]), ",".join(map(str, e["seeds"]))]
        cells += [_fmt_ms(e["class_dice_per_seed"].get(l, [])) for l in labels]
        cells += [_fmt_ms(e["foreground_dice_per_seed"]), f"{e['mean_training_time_s']:.0f}",
                  f"{e['load_free_training_time_s']:.0f}",
                  f"{e['time_ratio']:.2f}×" if e.get("time_ratio") else "–",
                  _fmt_diff(e.get("diff_equal_iterations")), _fmt_diff(e.get("diff_equal_time"))]
        lines.append("| " + " | ".join(cells) + " |")
    hints = [e["equal_time_hint"] for e in entries if e.get("equal_time_hint")]
    return "\n".join(lines + ([""] + [f"- {h}" for h in dict.fromkeys(hints)] if hints else []))


def plot(plan: str, entries: List[Dict[str, Any]], path: str) -> None:
    """Mean foreground Dice against mean training time, one line per trainer over its budgets, seed range shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    by_label: Dict[str, List[Dict[str, Any]]] = defaultdict(list)
    for e in entries:
        if not e.get("other_machine"):  # timed on another CPU: its time is not on this axis
            by_label[e["label"]].append(e)
    for label, es in by_label.items():
        es = sorted(es, key=lambda e: e["load_free_training_time_s"])
        t = [e["load_free_training_time_s"] / 60 for e in es]
        m = [np.mean(e["foreground_dice_per_seed"]) for e in es]
        lo = [min(e["foreground_dice_per_seed"]) for e in es]
        hi = [max(e["foreground_dice_per_seed"]) for e in es]
        line, = ax.plot(t, m, marker="o", label=f"{label} ({len(es[0]['seeds'])} seeds)")
        if len(es) > 1:
            ax.fill_between(t, lo, hi, color=line.get_color(), alpha=0.2)
        ax.vlines(t, lo, hi, color=line.get_color(), alpha=0.6)
    ax.set_xlabel("load-free training time (min, 2 CPU cores)")
    ax.set_ylabel("mean foreground Dice, held-back test set")
    ax.set_title(f"{plan}: Dice against training time (seed range shaded)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
