"""Accuracy at an equal small training budget, with nnU-Net's real ``nnUNetv2_train`` command.

For one plan: a split (``splits_final.json``, every fold the same; cases of one patient stay together) of
``train_cases`` training and ``val_cases`` validation cases; a configuration inheriting the plan's with a CPU-sized
batch (``inherits_from``, same network, patch and preprocessed data); then
``nnUNetv2_train DATASET CONFIG 0 -tr nnUNetTrainer_budget`` and ``... -tr nnUNetTrainerMSA2_budget`` with the
budget in the environment (``nnUNetMSA_epochs``, ``nnUNetMSA_iterations``, ``nnUNetMSA_val_iterations``). nnU-Net
validates each model at the end on the fold's validation cases (sliding window, mirroring) and writes
``fold_0/validation/summary.json``; the Dice per class and the foreground mean come from there, the wall time from
the command, the pure training time from the "Epoch time" lines of nnU-Net's training log.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, replace
from typing import Dict, Optional

from nnunet_msa.pipeline.plans_edit import add_inherited_configuration, case_ids, write_split
from nnunet_msa.pipeline.splits import grouped_split, separator_pattern
from nnunet_msa.pipeline.training_log import epoch_times

from benchmarks.catalog import PlanSpec
from benchmarks.workspace import PLANS_NAME, Workspace, nnunet_command


@dataclass(frozen=True)
class Budget:
    """Training budget of one plan (the same for both trainers)."""

    epochs: int
    iterations: int
    val_iterations: int
    batch_size: int
    train_cases: int
    val_cases: int

    @property
    def samples_seen(self) -> int:
        return self.epochs * self.iterations * self.batch_size


# Defaults: all four plans, both trainers, about 45 min on 2 idle CPU cores in total. Most of it goes to
# hippocampus 2d, the one plan where nnU-Net's default leaves the all-background stage within minutes on CPU (it
# starts to segment after ~225 iterations of batch 32; measured 2026-11-24); the other budgets only check that
# training runs and validates, and their Dice compares the first steps of learning, not accuracy.
DEFAULT_BUDGETS: Dict[str, Budget] = {
    "hippocampus_2d": Budget(epochs=30, iterations=25, val_iterations=1, batch_size=32, train_cases=40, val_cases=10),
    "hippocampus_3d_fullres": Budget(epochs=2, iterations=10, val_iterations=1, batch_size=2, train_cases=40,
                                     val_cases=10),
    "acdc_2d": Budget(epochs=2, iterations=15, val_iterations=1, batch_size=4, train_cases=40, val_cases=4),
    "acdc_3d_fullres": Budget(epochs=1, iterations=5, val_iterations=1, batch_size=2, train_cases=40, val_cases=2),
}
QUICK_BUDGET = Budget(epochs=1, iterations=2, val_iterations=1, batch_size=2, train_cases=4, val_cases=2)


def budget_for(plan: PlanSpec, quick: bool, overrides: Dict[str, Optional[int]]) -> Budget:
    """The plan's default (or quick) budget with command-line overrides (None = keep)."""
    base = QUICK_BUDGET if quick else DEFAULT_BUDGETS[plan.name]
    return replace(base, **{k: v for k, v in overrides.items() if v is not None})


def _read_summary(path: str, dataset_json: dict) -> Dict[str, object]:
    with open(path) as f:
        summary = json.load(f)
    names = {str(v): k for k, v in dataset_json["labels"].items() if not isinstance(v, (list, tuple))}
    per_class = {names.get(label, label): float(m["Dice"]) for label, m in summary["mean"].items()}
    return {"foreground_dice": float(summary["foreground_mean"]["Dice"]), "dice_per_class": per_class,
            "n_validation_cases": len(summary.get("metric_per_case", []))}


def train_and_validate(ws: Workspace, plan: PlanSpec, trainer: str, configuration: str, budget: Budget,
                       dataset_json: dict, device: str) -> Dict[str, object]:
    """One fresh ``nnUNetv2_train`` run on fold 0; Dice from nnU-Net's validation summary and the times."""
    output = os.path.join(ws.results_dir(plan.dataset), f"{trainer}__{PLANS_NAME}__{configuration}")
    if os.path.isdir(output):
        shutil.rmtree(output)  # fresh results every run, never a leftover summary
    env = ws.env(epochs=budget.epochs, iterations=budget.iterations, val_iterations=budget.val_iterations)
    args = [nnunet_command("nnUNetv2_train"), str(plan.dataset.dataset_id), configuration, "0", "-tr", trainer,
            "-device", device]
    print(f"  $ {' '.join(args)}", flush=True)
    from nnunet_msa.pipeline.commands import run_command

    wall = run_command(args, env, ws.log_path(f"train_{plan.name}_{trainer}"))
    fold = os.path.join(output, "fold_0")
    result = _read_summary(os.path.join(fold, "validation", "summary.json"), dataset_json)
    epochs = epoch_times(fold)
    result.update({"wall_time_s": wall, "epoch_times_s": epochs, "training_time_s": sum(epochs),
                   "output_folder": output})
    return result


def run_accuracy(ws: Workspace, plan: PlanSpec, trainers: Dict[str, str], budget: Budget, dataset_json: dict,
                 device: str = "cpu", log=print) -> Dict[str, object]:
    """Train and validate every trainer of ``trainers`` (key -> trainer name) on the same split and budget."""
    pre = ws.preprocessed_dir(plan.dataset)
    train, val = grouped_split(case_ids(ws.raw_dir(plan.dataset)), budget.train_cases, budget.val_cases,
                               separator_pattern(plan.dataset.group_separator))
    write_split(pre, train, val)
    configuration = add_inherited_configuration(pre, plan.configuration, f"{plan.configuration}_bench_b"
                                                f"{budget.batch_size}", budget.batch_size)
    out: Dict[str, object] = {"budget": asdict(budget), "samples_seen": budget.samples_seen,
                              "configuration": configuration, "train_cases": train, "val_cases": val,
                              "results": {}}
    for key, trainer in trainers.items():
        res = train_and_validate(ws, plan, trainer, configuration, budget, dataset_json, device)
        out["results"][key] = res
        log(f"    {key} ({trainer}): foreground Dice {res['foreground_dice']:.4f}, wall {res['wall_time_s']:.0f} s, "
            f"epochs {res['training_time_s']:.0f} s")
    return out
