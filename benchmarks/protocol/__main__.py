"""``python -m benchmarks.protocol``: the accuracy protocol (see the package docstring).

Examples::

    python -m benchmarks.protocol                                    # hippocampus 2d, nnU-Net + MSA2, seeds 0-2
    python -m benchmarks.protocol --trainers nnUNetTrainer --iterations 1000,1500    # nnU-Net at two budgets
    python -m benchmarks.protocol --plans hippocampus_3d_fullres --seeds 0
    python -m benchmarks.protocol --trainers nnUNetTrainerMSA2+plannedRF        # candidates planned from the labels
    python -m benchmarks.protocol --report-only                      # table and plot from the records
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import List

from benchmarks.protocol.design import (BASELINE, PLANNED, PROTOCOL_PLANS, prepare_protocol_data, prepare_split,
                                        run_key, split_trainer)
from benchmarks.protocol.report import compare, load_rows, markdown_table, plot
from benchmarks.protocol.runner import run_cached
from benchmarks.protocol.time_ratio import DEFAULT_RATIOS, load_ratios
from benchmarks.workspace import Workspace

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DEFAULT_RESULTS = os.path.join(REPO, "benchmarks", "results", "protocol")
DEFAULT_WORKSPACE = os.path.join(REPO, "benchmarks", "out", "protocol_workspace")


def _ints(text: str) -> List[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.protocol", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--plans", default="hippocampus_2d", help=f"comma-separated, of {sorted(PROTOCOL_PLANS)}")
    p.add_argument("--trainers", default=f"{BASELINE},nnUNetTrainerMSA2",
                   help="comma-separated trainer names (each runs as its _budget variant); a name ending in "
                        f"{PLANNED} trains on a configuration whose SACM candidates are planned from the labels")
    p.add_argument("--seeds", default="0,1,2", help="nnUNetMSA_seed values (default %(default)s)")
    p.add_argument("--iterations", default="", help="training iterations, comma-separated budgets (default: the "
                                                    "plan's, 1000)")
    p.add_argument("--data", default=os.path.join(REPO, "..", "shared", "data"), help="the shared data folder")
    p.add_argument("--workspace", default=DEFAULT_WORKSPACE, help="nnU-Net folders, run folders (not kept in git)")
    p.add_argument("--results", default=DEFAULT_RESULTS, help="the run records (the cache; kept in git)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--n-proc-da", type=int, default=2, help="nnUNet_n_proc_DA of the training runs")
    p.add_argument("--n-proc-predict", type=int, default=1,
                   help="nnUNetv2_predict's -npp and -nps (0: in one process, for tiny runs)")
    p.add_argument("--max-test-cases", type=int, default=None, help="tiny runs: only this many test cases")
    p.add_argument("--max-train-cases", type=int, default=None, help="tiny runs: only this many training cases")
    p.add_argument("--max-validation-cases", type=int, default=None,
                   help="tiny runs: only this many of nnU-Net's validation cases")
    p.add_argument("--iterations-per-epoch", type=int, default=None, help="tiny runs: shorter epochs")
    p.add_argument("--no-resume", action="store_true",
                   help="start unfinished runs again from scratch instead of going on from their last checkpoint")
    p.add_argument("--report-only", action="store_true", help="no training: report the records there are")
    p.add_argument("--ratios", default=DEFAULT_RATIOS,
                   help="idle time ratios for the equal-time column (python -m benchmarks.protocol.time_ratio)")
    p.add_argument("--bootstrap", type=int, default=10000, help="bootstrap replicates")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    plans = [s.strip() for s in args.plans.split(",") if s.strip()]
    unknown = [p for p in plans if p not in PROTOCOL_PLANS]
    if unknown:
        print(f"unknown plan(s) {unknown}; choose from {sorted(PROTOCOL_PLANS)}", file=sys.stderr)
        return 2
    trainers = [t.strip() for t in args.trainers.split(",") if t.strip()]
    seeds = _ints(args.seeds)
    ws = Workspace(args.workspace, args.data)
    os.makedirs(args.results, exist_ok=True)
    report_parts = []
    for name in plans:
        pplan = PROTOCOL_PLANS[name]
        if args.iterations_per_epoch:
            from dataclasses import replace
            pplan = replace(pplan, iterations_per_epoch=args.iterations_per_epoch)
        budgets = _ints(args.iterations) or [pplan.default_iterations]
        print(f"[protocol] {name}: preparing data", flush=True)
        prepare_protocol_data(ws, pplan)
        planned = any(split_trainer(t)[1] for t in trainers)
        split = prepare_split(ws.raw_dir(pplan.plan.dataset), ws.preprocessed_dir(pplan.plan.dataset), pplan,
                              args.max_test_cases, args.max_train_cases, planned,
                              args.max_validation_cases)
        print(f"[protocol] {name}: split {split.digest}: {len(split.train)} training, {len(split.validation)} "
              f"validation (nnU-Net's own), {len(split.test)} test cases", flush=True)
        if not args.report_only:
            for iterations in budgets:
                for seed in seeds:
                    for trainer in trainers:
                        key = run_key(pplan, trainer, iterations, seed, split)
                        run_cached(ws, pplan, split, key, args.results, args.device, args.n_proc_da,
                                   resume=not args.no_resume, log=lambda m: print(m, flush=True),
                                   n_proc_predict=args.n_proc_predict)
        rows = load_rows(args.results, name, split.digest)
        if not rows:
            print(f"[protocol] {name}: no records yet")
            continue
        entries = compare(rows, list(split.test), args.bootstrap, name, load_ratios(args.ratios))
        report_parts.append(markdown_table(name, entries, len(split.test)))
        with open(os.path.join(args.results, f"{name}_report.md"), "w") as f:
            f.write(report_parts[-1] + "\n")
        with open(os.path.join(args.results, f"{name}_report.json"), "w") as f:
            json.dump({"plan": name, "split": split.digest, "test_cases": list(split.test), "rows": entries}, f,
                      indent=1)
        plot(name, entries, os.path.join(args.results, f"{name}_dice_vs_time.png"))
    if report_parts:
        print("\n" + "\n\n".join(report_parts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
