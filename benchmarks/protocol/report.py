"""The protocol's report from its records: a markdown table, a JSON summary and a plot of Dice against training time.

Rows are (trainer, network signature, iterations). A record whose signature is not the trainer's current one (its
options changed since) is shown as ``trainer@<signature>`` so that earlier defaults stay comparable. Scores are the
per-case mean Dice over the foreground labels; differences are paired by case against nnU-Net's default
(``bootstrap.paired_difference``), at the same iterations and at the same training time
(``bootstrap.interpolate_budgets`` over nnU-Net's budgets).

Equal time uses a **time ratio measured idle, side by side on one machine** (``benchmarks.protocol.time_ratio``:
short interleaved ``nnUNetv2_train`` runs of nnU-Net and the trainer, foreign CPU load measured; stored in
``time_ratios.json`` beside the records). A row trained for N iterations at ratio r took the time of r·N iterations of
nnU-Net, so its equal-time difference is against nnU-Net's scores at r·N iterations, linear between nnU-Net's
budgets (``bootstrap.interpolate_budgets`` over iterations). The runs' own times (summed epoch times, "training s, as
run", and the load-free time, epochs × the 10th percentile of the epoch times) are kept in the table as information
only: the runs shared 2 cores with other jobs and were made on CPU models up to 2.6× apart. A row without an idle
ratio gets no equal-time difference and no point in the plot, and the table says the command that measures it.
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
from benchmarks.protocol.design import (BASELINE, PLANNED, signature_hash, signature_hashes, split_trainer,
                                        trainer_names_by_signature)


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

    def scores(self, cases: List[str], seeds: Optional[List[int]] = None, label: Optional[str] = None) -> np.ndarray:
        """(seeds, cases) per-case foreground mean Dice, or with ``label`` that structure's Dice."""
        recs = self.by_seed()
        out = []
        for s in (seeds if seeds is not None else self.seeds):
            d = recs[s]["test_dice"]
            out.append([float(np.nanmean(list(d[c].values()))) if label is None else float(d[c][label])
                        for c in cases])
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
    """Rows of every record of ``plan`` (of one split, if given). Records of one network are one row whatever name
    they were recorded under: a seed trained as ``nnUNetTrainerMSA2_inputHeLightShared`` and one trained as
    ``nnUNetTrainerMSA2`` after that network became the default share the row ``nnUNetTrainerMSA2 (= the former
    name)``. A seed recorded twice for one network (never by the runner, which finds the first) counts once."""
    groups: Dict[Tuple[str, int], Row] = {}
    aliases: Dict[Tuple[str, int], List[str]] = defaultdict(list)
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
        alias = None
        if known is None:
            try:  # a name no class has (``+plannedRF``): itself if its options are still these
                current = key["signature"] in signature_hashes(trainer)
            except ValueError:
                current = False
            network = trainer if current else (_planned_trainer_with(key["signature"], names) or
                                               f"{trainer}@{key['signature']}")
        else:
            network = known
            if known != trainer:
                try:
                    alias = trainer if key["signature"] in signature_hashes(trainer) else None
                except ValueError:
                    alias = None
        gk = (network, key["iterations"])
        row = groups.setdefault(gk, Row(network, trainer, key["iterations"]))
        if key["seed"] in row.seeds:
            continue
        row.records.append(rec)
        if alias is not None and alias not in aliases[gk]:
            aliases[gk].append(alias)
    for gk, row in groups.items():
        if aliases[gk]:
            row.label = f"{row.label} (= {', '.join(sorted(aliases[gk]))})"
    return sorted(groups.values(), key=lambda r: (r.label != BASELINE, r.label, r.iterations))


def _fmt_ms(values: List[float]) -> str:
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{np.mean(values):.4f} ± {np.std(values, ddof=1):.4f}"


def _planned_trainer_with(signature: str, names: Dict[str, str]) -> Optional[str]:
    """The ``TRAINER+plannedRF`` of today whose signature is ``signature`` (``names``: signature -> trainer)."""
    for trainer in dict.fromkeys(names.values()):
        try:
            if signature_hash(f"{trainer}{PLANNED}") == signature:
                return f"{trainer}{PLANNED}"
        except ValueError:
            continue
    return None


def _trainer_with_options(row: Row) -> Optional[str]:
    """The trainer name that builds a row's network today (the label's first name), or None when none does (a
    label ``name@signature``)."""
    return None if "@" in row.label else row.label.split(" (= ")[0]


def compare(rows: List[Row], cases: List[str], n_boot: int = 10000, plan: str = "",
            ratios: Optional[List[Dict[str, Any]]] = None) -> List[Dict[str, Any]]:
    """Per row: summary numbers and the paired differences to nnU-Net's default, at equal iterations and, with an
    idle time ratio of the row's network in ``ratios`` (``time_ratio.load_ratios``), at equal time."""
    from benchmarks.protocol.time_ratio import ratio_for

    ratios = ratios or []
    base = [r for r in rows if r.label == BASELINE]
    base_by_its = {r.iterations: r for r in base}
    out = []
    # nnU-Net's budgets for the equal-time comparison: the seeds every budget has
    common = sorted(set.intersection(*(set(r.seeds) for r in base))) if base else []
    base_its = [float(r.iterations) for r in base]
    base_scores = [r.scores(cases, common) for r in base] if common else []
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
            if same is not None:
                entry["diff_equal_iterations"] = paired_difference(scores, same.scores(cases), n_boot).__dict__
                labels = sorted(entry["class_dice_per_seed"])
                if len(labels) > 1:  # per structure, the same pairing (cases and seeds)
                    entry["class_diff_equal_iterations"] = {
                        label: paired_difference(row.scores(cases, label=label), same.scores(cases, label=label),
                                                 n_boot).__dict__ for label in labels}
            signatures = sorted({r["key"]["signature"] for r in row.records})
            measured = [m for m in (ratio_for(ratios, plan, s) for s in signatures) if m is not None]
            if not measured:
                today = _trainer_with_options(row)
                entry["equal_time_hint"] = (
                    f"`{row.label}`: no idle side-by-side time ratio; measure it with python -m "
                    f"benchmarks.protocol.time_ratio --plans {plan or 'PLAN'} --trainers {today}" if today else
                    f"`{row.label}`: no idle side-by-side time ratio, and no trainer of today has its options")
            else:
                m = measured[0]
                entry["time_ratio"] = m["ratio"]
                entry["time_ratio_measurement"] = {k: m[k] for k in ("trainer", "cpu_model", "measured_utc",
                                                                     "ratio_per_round", "iteration_s",
                                                                     "baseline_iteration_s", "command")}
                at_its = m["ratio"] * row.iterations
                entry["nnunet_iterations_at_equal_time"] = at_its
                at = interpolate_budgets(base_its, base_scores, at_its) if base_scores else None
                entry["diff_equal_time"] = paired_difference(scores, at, n_boot).__dict__ if at is not None else None
                if at is None and base_scores:
                    # nnU-Net's longest budget took less time than this row: a difference against it is an upper
                    # bound of the equal-time difference as long as nnU-Net's curve still rises
                    longest = int(np.argmax(base_its))
                    entry["diff_equal_time_bound"] = dict(
                        paired_difference(scores, base_scores[longest], n_boot).__dict__,
                        nnunet_iterations=int(base_its[longest]))
                if at is None and base:
                    per_epoch = int(base[0].records[0]["iterations_per_epoch"])
                    need = int(np.ceil(at_its / per_epoch) * per_epoch)
                    entry["equal_time_hint"] = (f"`{row.label}` at {row.iterations} its took the time of {at_its:.0f} "
                                                f"of nnU-Net's, beyond its longest budget ({max(base_its):.0f}): "
                                                f"python -m benchmarks.protocol --trainers {BASELINE} "
                                                f"--iterations {need} --seeds {','.join(map(str, common))}")
        out.append(entry)
    return out


def _fmt_equal_time(e: Dict[str, Any]) -> str:
    """The equal-time difference, or "≤ bound (vs nnU-Net at N its)" when nnU-Net has no budget that long."""
    if e.get("diff_equal_time"):
        return _fmt_diff(e["diff_equal_time"])
    bound = e.get("diff_equal_time_bound")
    if bound:
        return f"≤ {_fmt_diff(bound)} (vs nnU-Net's {bound['nnunet_iterations']} its)"
    return "–"


def _fmt_diff(d: Optional[Dict[str, Any]]) -> str:
    if not d:
        return "–"
    return f"{d['mean']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}]"


def markdown_table(plan: str, entries: List[Dict[str, Any]], n_cases: int) -> str:
    labels = sorted({label for e in entries for label in e["class_dice_per_seed"]})
    head = (["trainer", "iterations", "seeds"] + [f"Dice {l}" for l in labels]
            + ["mean Dice", "training s, as run", "load-free s", "time / nnU-Net (idle, side by side)",
               "Δ vs nnU-Net, equal iterations [95 % CI]",
               "Δ vs nnU-Net, equal time [95 % CI]"])
    lines = [f"**{plan}** — {n_cases} held-back test cases; mean ± sd over seeds; Δ: paired per-case difference of "
             f"the mean foreground Dice, bootstrap over cases and seeds; equal time: nnU-Net at ratio × iterations (its "
             f"scores linear between its budgets), the ratio measured idle side by side "
             f"(python -m benchmarks.protocol.time_ratio); the runs' own times are information only", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for e in entries:
        cells = [f"`{e['label']}`", str(e["iterations"]), ",".join(map(str, e["seeds"]))]
        cells += [_fmt_ms(e["class_dice_per_seed"].get(l, [])) for l in labels]
        cells += [_fmt_ms(e["foreground_dice_per_seed"]), f"{e['mean_training_time_s']:.0f}",
                  f"{e['load_free_training_time_s']:.0f}",
                  f"{e['time_ratio']:.2f}×" if e.get("time_ratio") else "–",
                  _fmt_diff(e.get("diff_equal_iterations")), _fmt_equal_time(e)]
        lines.append("| " + " | ".join(cells) + " |")
    per_structure = [e for e in entries if e.get("class_diff_equal_iterations")]
    if per_structure:
        lines += ["", "Δ vs nnU-Net per structure, equal iterations [95 % CI] (paired per case, bootstrap over cases "
                      "and seeds)", "", "| trainer | iterations | seeds | " + " | ".join(f"Δ {l}" for l in labels)
                  + " |", "|" + "---|" * (3 + len(labels))]
        for e in per_structure:
            lines.append(f"| `{e['label']}` | {e['iterations']} | {','.join(map(str, e['seeds']))} | " + " | ".join(
                _fmt_diff(e["class_diff_equal_iterations"].get(l)) for l in labels) + " |")
    hints = [e["equal_time_hint"] for e in entries if e.get("equal_time_hint")]
    return "\n".join(lines + ([""] + [f"- {h}" for h in dict.fromkeys(hints)] if hints else []))


def plot(plan: str, entries: List[Dict[str, Any]], path: str) -> None:
    """The Pareto view: mean foreground Dice against idle training time. nnU-Net's budgets are its curve; every row
    with an idle time ratio is a point (its budgets joined) at ratio × iterations of nnU-Net's time, with its seed
    mean ± sd as an error bar. The time axis is nnU-Net's seconds per iteration of the newest measurement, so the
    minutes are those of that CPU; rows without a ratio are listed under the plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    timed = [e for e in entries if e.get("time_ratio_measurement")]
    if timed:
        newest = max(timed, key=lambda e: e["time_ratio_measurement"]["measured_utc"])["time_ratio_measurement"]
        per_it, cpu = newest["baseline_iteration_s"], newest["cpu_model"]
    else:
        per_it, cpu = None, ""
    fig, ax = plt.subplots(figsize=(9, 5.5))
    def network(e: Dict[str, Any]) -> str:  # one line per network: "X (= Y)" and "X" are the same one
        return e["label"].split(" (= ")[0]

    by_label: Dict[str, List[Dict[str, Any]]] = defaultdict(list)
    for e in entries:
        if e["label"] == BASELINE or e.get("time_ratio"):
            by_label[network(e)].append(e)
    missing = sorted({network(e) for e in entries if e["label"] != BASELINE and not e.get("time_ratio")})
    unit = per_it / 60 if per_it else 1.0
    for label, es in sorted(by_label.items(), key=lambda kv: kv[0] != BASELINE):
        es = sorted(es, key=lambda e: e["iterations"])
        t = [e["iterations"] * e.get("time_ratio", 1.0) * unit for e in es]
        m = [float(np.mean(e["foreground_dice_per_seed"])) for e in es]
        sd = [float(np.std(e["foreground_dice_per_seed"], ddof=1)) if len(e["seeds"]) > 1 else 0.0 for e in es]
        es = [e for e in es if e["iterations"] not in {x["iterations"] for x in es if x is not e and
                                                        len(x["seeds"]) > len(e["seeds"])}]
        seeds = "/".join(str(len(e["seeds"])) for e in es)
        style = dict(color="black", lw=2, marker="s") if label == BASELINE else dict(marker="o", lw=1)
        ax.errorbar(t, m, yerr=sd, capsize=3, label=f"{label} ({seeds} seeds)", **style)
    ax.set_xlabel(f"training time, idle (min on {cpu}, 2 cores)" if per_it else
                  "training time (nnU-Net iterations; no idle measurement yet)")
    ax.set_ylabel("mean foreground Dice, held-back test set")
    ax.set_title(f"{plan}: Dice against training time (mean ± sd over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    if missing:
        fig.text(0.01, 0.01, "not on the time axis (no idle time ratio yet): " + ", ".join(
            m.replace("nnUNetTrainerMSA2", "MSA2") for m in missing), fontsize=6.5, wrap=True)
    fig.tight_layout(rect=(0, 0.08 if missing else 0, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
