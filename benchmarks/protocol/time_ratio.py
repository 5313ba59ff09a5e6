"""``python -m benchmarks.protocol.time_ratio``: the training-time ratio of MSA2 trainers to nnU-Net's default,
measured side by side on one idle machine, for the protocol's equal-time comparison.

The protocol's own runs take hours and share the cores with whatever else runs, and our machines differ up to 2.6× in
speed, so their times cannot be compared across runs. This measures the ratio directly: short real
``nnUNetv2_train`` runs of the protocol's configuration (same batch, same data-augmentation workers, same seed), the
trainers interleaved round by round (nnU-Net, A, B, nnU-Net, A, B, ...) so that a drift of the machine hits all of
them alike. A trainer's time per iteration is the median of nnU-Net's logged ``Epoch time`` over its epochs after the
first (start-up) in every round, divided by the iterations per epoch; its ratio is that over nnU-Net's.

Idle is measured, not assumed: over each run the CPU time the whole machine spent (``/proc/stat``) is compared with
the CPU time of the training's own process tree (``getrusage(RUSAGE_CHILDREN)``); the rest is foreign load, and an
entry is marked ``idle`` only when no run saw more than ``IDLE_FOREIGN_SHARE`` of the cores taken by others.

The ratios go to ``benchmarks/results/protocol/time_ratios.json`` (one entry per plan, trainer signature and CPU model;
a new measurement replaces the older one), where the report reads them (``report.compare``)::

    python -m benchmarks.protocol.time_ratio --plans hippocampus_2d --trainers nnUNetTrainerMSA2,nnUNetTrainerMSA2_fast
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from nnunet_msa.pipeline.commands import run_command
from nnunet_msa.pipeline.training_log import epoch_times

from benchmarks.protocol.design import (BASELINE, PROTOCOL_PLANS, ProtocolPlan, prepare_protocol_data, prepare_split,
                                        signature_hash, signature_hashes, split_trainer)
from benchmarks.protocol.runner import cpu_model
from benchmarks.workspace import PLANS_NAME, Workspace, nnunet_command

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DEFAULT_RATIOS = os.path.join(REPO, "benchmarks", "results", "protocol", "time_ratios.json")
#: the largest share of the machine's cores that others may have used during a run of an ``idle`` measurement
IDLE_FOREIGN_SHARE = 0.05


# --------------------------------------------------------------------------------------------------- measuring
def _busy_cpu_seconds() -> float:
    """CPU seconds the whole machine has spent busy since boot (``/proc/stat``: user, nice, system, irq, softirq)."""
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:]
    ticks = [int(v) for v in fields]
    busy = ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6]
    return busy / os.sysconf("SC_CLK_TCK")


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def train_once(ws: Workspace, pplan: ProtocolPlan, trainer: str, epochs: int, seed: int, n_proc_da: int,
               device: str, log_path: str) -> Dict[str, Any]:
    """One short ``nnUNetv2_train`` of ``trainer``'s ``_budget`` variant into a temporary results folder (deleted):
    its epoch times and the foreign CPU load while it ran."""
    dataset = pplan.plan.dataset
    configuration = pplan.configuration_for(trainer)
    budget_trainer = f"{split_trainer(trainer)[0]}_budget"
    results = tempfile.mkdtemp(prefix="time_ratio_results_")
    try:
        env = ws.env(epochs=epochs, iterations=pplan.iterations_per_epoch, val_iterations=1)
        env.update({"nnUNet_results": results, "nnUNetMSA_seed": str(seed), "nnUNet_n_proc_DA": str(n_proc_da),
                    "nnUNetMSA_validation": "off"})  # only the epoch times are kept
        args = [nnunet_command("nnUNetv2_train"), str(dataset.dataset_id), configuration, "0", "-tr", budget_trainer,
                "-device", device]
        busy0, own0 = _busy_cpu_seconds(), _children_cpu_seconds()
        wall = run_command(args, env, log_path)
        busy, own = _busy_cpu_seconds() - busy0, _children_cpu_seconds() - own0
        fold = os.path.join(results, dataset.dataset_name, f"{budget_trainer}__{PLANS_NAME}__{configuration}", "fold_0")
        times = epoch_times(fold)
    finally:
        shutil.rmtree(results, ignore_errors=True)
    if len(times) != epochs:
        raise RuntimeError(f"{trainer}: {len(times)} epoch times logged, expected {epochs} (log: {log_path})")
    cores = os.cpu_count() or 1
    return {"epoch_times_s": times, "wall_s": wall, "foreign_cpu_share": max(0.0, busy - own) / (wall * cores)}


def ratio_summary(per_round: Dict[str, List[List[float]]], iterations_per_epoch: int) -> Dict[str, Dict[str, Any]]:
    """Per trainer (the first is the baseline): the time per iteration (median over the epochs after each round's
    first), its ratio to the baseline's, and the ratio per round (the spread of the measurement)."""
    def steady(times: List[float]) -> List[float]:
        return times[1:] if len(times) > 1 else times

    names = list(per_round)
    base = names[0]
    out: Dict[str, Dict[str, Any]] = {}
    base_its = float(np.median([t for r in per_round[base] for t in steady(r)])) / iterations_per_epoch
    for name in names:
        its = float(np.median([t for r in per_round[name] for t in steady(r)])) / iterations_per_epoch
        rounds = [float(np.median(steady(a))) / float(np.median(steady(b)))
                  for a, b in zip(per_round[name], per_round[base])]
        out[name] = {"iteration_s": its, "ratio": its / base_its, "ratio_per_round": rounds}
    return out


# ----------------------------------------------------------------------------------------------------- storage
def load_ratios(path: str = DEFAULT_RATIOS) -> List[Dict[str, Any]]:
    if not os.path.isfile(path):
        return []
    with open(path) as f:
        return json.load(f)["entries"]


def store(entries: List[Dict[str, Any]], path: str = DEFAULT_RATIOS) -> None:
    """Add ``entries``, replacing older ones of the same plan, signature and CPU model."""
    def key(e: Dict[str, Any]) -> Tuple[str, str, str]:
        return e["plan"], e["signature"], e["cpu_model"]

    new = {key(e) for e in entries}
    kept = [e for e in load_ratios(path) if key(e) not in new]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump({"note": "Training-time ratios to nnU-Net's default measured side by side on one machine "
                           "(python -m benchmarks.protocol.time_ratio); the report's equal-time column uses those "
                           "marked idle.",
                   "entries": sorted(kept + entries, key=lambda e: (e["plan"], e["trainer"]))}, f, indent=1)


def ratio_for(entries: List[Dict[str, Any]], plan: str, signature: str) -> Optional[Dict[str, Any]]:
    """The newest idle measurement of ``plan`` whose trainer had the record signature ``signature`` (any value of
    an option that changes no number), or None."""
    found = [e for e in entries if e["plan"] == plan and e["idle"] and signature in e["signatures"]]
    return max(found, key=lambda e: e["measured_utc"]) if found else None


# --------------------------------------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.protocol.time_ratio",
                                description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--plans", default="hippocampus_2d", help=f"comma-separated, of {sorted(PROTOCOL_PLANS)}")
    p.add_argument("--trainers", default="nnUNetTrainerMSA2",
                   help=f"comma-separated; {BASELINE} is always measured first in every round")
    p.add_argument("--epochs", type=int, default=3, help="epochs per run (the first is start-up, not counted)")
    p.add_argument("--rounds", type=int, default=2, help="rounds of every trainer, interleaved")
    p.add_argument("--iterations-per-epoch", type=int, default=None, help="tiny runs: shorter epochs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-proc-da", type=int, default=2, help="nnUNet_n_proc_DA, as the protocol's runs")
    p.add_argument("--device", default="cpu")
    p.add_argument("--data", default=os.path.join(REPO, "..", "shared", "data"))
    p.add_argument("--workspace", default=os.path.join(REPO, "benchmarks", "out", "protocol_workspace"))
    p.add_argument("--output", default=DEFAULT_RATIOS, help="the ratios file (kept in git)")
    return p


def measure_plan(ws: Workspace, pplan: ProtocolPlan, trainers: List[str], args: argparse.Namespace,
                 log_dir: str) -> List[Dict[str, Any]]:
    """Interleaved rounds of every trainer on one plan; one entry per non-baseline trainer."""
    dataset = pplan.plan.dataset
    prepare_protocol_data(ws, pplan)
    planned = any(split_trainer(t)[1] for t in trainers)
    prepare_split(ws.raw_dir(dataset), ws.preprocessed_dir(dataset), pplan, planned_candidates=planned)
    names = [BASELINE] + [t for t in trainers if t != BASELINE]
    per_round: Dict[str, List[List[float]]] = {n: [] for n in names}
    foreign: Dict[str, List[float]] = {n: [] for n in names}
    for r in range(args.rounds):
        for name in names:
            log = os.path.join(log_dir, f"{pplan.plan.name}_{name}_round{r}.log")
            print(f"[time ratio] {pplan.plan.name} round {r + 1}/{args.rounds}: {name}, {args.epochs} epochs of "
                  f"{pplan.iterations_per_epoch} iterations (log: {log})", flush=True)
            run = train_once(ws, pplan, name, args.epochs, args.seed, args.n_proc_da, args.device, log)
            per_round[name].append(run["epoch_times_s"])
            foreign[name].append(run["foreign_cpu_share"])
            print(f"  epochs {', '.join(f'{t:.1f}' for t in run['epoch_times_s'])} s; others used "
                  f"{100 * run['foreign_cpu_share']:.1f} % of the cores", flush=True)
    summary = ratio_summary(per_round, pplan.iterations_per_epoch)
    worst = max(v for vs in foreign.values() for v in vs)
    measured = datetime.now(timezone.utc).isoformat(timespec="seconds")
    import torch

    entries = []
    for name in names[1:]:
        entries.append({
            "plan": pplan.plan.name, "trainer": name, "signature": signature_hash(name),
            "signatures": signature_hashes(name) if not split_trainer(name)[1] else [signature_hash(name)],
            "configuration": pplan.configuration_for(name), "batch_size": pplan.batch_size,
            "iteration_s": summary[name]["iteration_s"], "baseline_iteration_s": summary[BASELINE]["iteration_s"],
            "ratio": summary[name]["ratio"], "ratio_per_round": summary[name]["ratio_per_round"],
            "epoch_times_s": per_round[name], "baseline_epoch_times_s": per_round[BASELINE],
            "epochs": args.epochs, "rounds": args.rounds, "iterations_per_epoch": pplan.iterations_per_epoch,
            "n_proc_DA": args.n_proc_da, "device": args.device,
            "foreign_cpu_share_max": worst, "idle": worst <= IDLE_FOREIGN_SHARE,
            "cpu_model": cpu_model(), "cores": os.cpu_count(), "torch": torch.__version__,
            "measured_utc": measured, "command": "python -m benchmarks.protocol.time_ratio " + " ".join(sys.argv[1:]),
        })
    return entries


def markdown(entries: List[Dict[str, Any]]) -> str:
    lines = ["| plan | trainer | s / iteration | nnU-Net s / iteration | ratio | per round | others' CPU share | CPU |",
             "|---|---|---|---|---|---|---|---|"]
    for e in entries:
        lines.append(f"| {e['plan']} | `{e['trainer']}` | {e['iteration_s']:.3f} | {e['baseline_iteration_s']:.3f} | "
                     f"{e['ratio']:.2f}× | {', '.join(f'{r:.2f}' for r in e['ratio_per_round'])} | "
                     f"{100 * e['foreign_cpu_share_max']:.1f} %{'' if e['idle'] else ' (not idle)'} | "
                     f"{e['cpu_model']} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    plans = [s.strip() for s in args.plans.split(",") if s.strip()]
    unknown = [p for p in plans if p not in PROTOCOL_PLANS]
    if unknown:
        print(f"unknown plan(s) {unknown}; choose from {sorted(PROTOCOL_PLANS)}", file=sys.stderr)
        return 2
    trainers = [t.strip() for t in args.trainers.split(",") if t.strip()]
    for t in trainers:
        try:
            signature_hash(t)
        except ValueError as e:
            print(str(e), file=sys.stderr)
            return 2
    ws = Workspace(args.workspace, args.data)
    log_dir = os.path.join(args.workspace, "time_ratio_logs")
    entries: List[Dict[str, Any]] = []
    for name in plans:
        pplan = PROTOCOL_PLANS[name]
        if args.iterations_per_epoch:
            from dataclasses import replace
            pplan = replace(pplan, iterations_per_epoch=args.iterations_per_epoch)
        entries += measure_plan(ws, pplan, trainers, args, log_dir)
    store(entries, args.output)
    print("\n" + markdown(entries))
    if not all(e["idle"] for e in entries):
        print(f"\nnot idle: other processes used more than {100 * IDLE_FOREIGN_SHARE:.0f} % of the cores during a "
              f"run; the report will not use these ratios. Measure again on a quiet machine.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
