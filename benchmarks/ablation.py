"""Ablation table (as the MSA2-Net paper's Table 6): train a chosen set of trainers at one budget on one plan with
nnU-Net's real ``nnUNetv2_train``, validate on the same fold, and print Dice per class and training time.

    python -m benchmarks.ablation                                    # hippocampus 2d, nnU-Net + MSA2 + 5 ablations
    python -m benchmarks.ablation --plan acdc_2d --trainers nnUNetTrainer,nnUNetTrainerMSA2,nnUNetTrainerMSA2_noSACM
    python -m benchmarks.ablation --epochs 5 --iterations 10 --batch-size 8 --out /tmp/ablation

Each trainer ``T`` runs as ``T_budget`` (``nnUNetTrainer_budget`` for nnU-Net's default), whose epochs and
iterations come from the environment; the split, the inherited smaller-batch configuration and the budget are the
same for every trainer (``benchmarks/accuracy.py``). Writes ``ablation.md`` and ``ablation.json`` in ``--out``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Dict, List, Optional

from benchmarks.accuracy import DEFAULT_BUDGETS, budget_for, run_accuracy
from benchmarks.catalog import PLANS
from benchmarks.system_info import machine_info
from benchmarks.workspace import Workspace, load_plan, prepare_dataset

DEFAULT_TRAINERS = ("nnUNetTrainer", "nnUNetTrainerMSA2", "nnUNetTrainerMSA2_noBridge", "nnUNetTrainerMSA2_noMASAG",
                    "nnUNetTrainerMSA2_noSACM", "nnUNetTrainerMSA2_bridgeOnly", "nnUNetTrainerMSA2_noTempAnneal")


def budget_trainer(name: str) -> str:
    """The ``*_budget`` trainer that trains ``name`` on the environment's budget; a clear error if none exists."""
    from nnunet_msa import training

    candidate = name if name.endswith("_budget") else f"{name}_budget"
    if candidate not in training.__all__:
        have = sorted(n[: -len("_budget")] for n in training.__all__ if n.endswith("_budget"))
        raise ValueError(f"no budget trainer for {name!r}: the ablation benchmark trains {have}")
    return candidate


def ablation_table(result: Dict[str, Any], classes: List[str]) -> str:
    """Markdown: one row per trainer, Dice per class, foreground mean, and the times."""
    header = ["trainer"] + [f"Dice {c}" for c in classes] + ["mean Dice", "training s", "wall s"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, r in result["results"].items():
        per = r["dice_per_class"]
        lines.append("| " + " | ".join([f"`{name}`"] + [f"{per.get(c, float('nan')):.4f}" for c in classes]
                                       + [f"{r['foreground_dice']:.4f}", f"{r['training_time_s']:.0f}",
                                          f"{r['wall_time_s']:.0f}"]) + " |")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--plan", default="hippocampus_2d", choices=sorted(PLANS))
    p.add_argument("--trainers", default=",".join(DEFAULT_TRAINERS), help="comma-separated trainer names")
    p.add_argument("--workspace", default=None, help="nnU-Net workspace (default: <out>/workspace, reused)")
    p.add_argument("--data", default=os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                                  "..", "shared", "data"))
    p.add_argument("--out", default=os.path.join("benchmarks", "out", "ablation"))
    p.add_argument("--device", default="cpu")
    for flag in ("epochs", "iterations", "val-iterations", "batch-size", "train-cases", "val-cases"):
        p.add_argument(f"--{flag}", type=int, default=None, help="budget override (default: the plan's in "
                                                                 "benchmarks/accuracy.py)")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    plan = PLANS[args.plan]
    trainers = {t.strip(): budget_trainer(t.strip()) for t in args.trainers.split(",") if t.strip()}
    os.makedirs(args.out, exist_ok=True)
    ws = Workspace(args.workspace or os.path.join(args.out, "workspace"), args.data)
    ws.apply_to_process()
    prepare_dataset(ws, plan.dataset, [plan.configuration], preprocess=True)
    ctx = load_plan(ws, plan)
    budget = budget_for(plan, False, {"epochs": args.epochs, "iterations": args.iterations,
                                      "val_iterations": args.val_iterations, "batch_size": args.batch_size,
                                      "train_cases": args.train_cases, "val_cases": args.val_cases})
    print(f"ablation on {plan.name}: {budget} (default {DEFAULT_BUDGETS[plan.name]})", flush=True)
    result = run_accuracy(ws, plan, trainers, budget, ctx.dataset_json, args.device)
    classes = [k for k in ctx.dataset_json["labels"] if k != "background"]
    table = ablation_table(result, classes)
    info = machine_info(args.device)
    md = (f"# Ablation on {plan.name}\n\nBudget: {budget.epochs} epochs × {budget.iterations} iterations, batch "
          f"{budget.batch_size}, {len(result['train_cases'])} training / {len(result['val_cases'])} validation "
          f"cases (fold 0), `{result['configuration']}`; every trainer the same. Machine: {info['cpu_model']}, "
          f"{info['usable_cores']} cores, torch {info['torch']}, nnU-Net {info['nnunetv2']}.\n\n"
          f"Command: `python -m benchmarks.ablation {' '.join(argv if argv is not None else sys.argv[1:])}`\n\n"
          f"{table}\n")
    with open(os.path.join(args.out, "ablation.md"), "w") as f:
        f.write(md)
    with open(os.path.join(args.out, "ablation.json"), "w") as f:
        json.dump({"plan": plan.name, "machine": info, **result}, f, indent=2, default=str)
    print(md, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
