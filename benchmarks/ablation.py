"""Comparison table of any list of trainers (the MSA2-Net paper's ablation, Table 6, or the other papers'
architectures): train each at one budget on one plan with nnU-Net's real ``nnUNetv2_train``, validate on the same
fold, and print Dice per class, parameters, forward FLOPs per patch and training time.

    python -m benchmarks.ablation                                    # hippocampus 2d, nnU-Net + MSA2 + 5 ablations
    python -m benchmarks.ablation --trainers architectures           # nnU-Net, MSA2, FIAS, QTSeg, AttnGate, CBAM, ...
    python -m benchmarks.ablation --plan acdc_2d --trainers nnUNetTrainer,nnUNetTrainerMSA2,nnUNetTrainerFIAS
    python -m benchmarks.ablation --epochs 5 --iterations 10 --batch-size 8 --out /tmp/ablation

Each trainer ``T`` runs as ``T_budget`` (``nnUNetTrainer_budget`` for nnU-Net's default), whose epochs and
iterations come from the environment; the split, the inherited smaller-batch configuration and the budget are the
same for every trainer (``benchmarks/accuracy.py``). Writes ``ablation.md``, ``ablation.json`` and
``comparison.png`` (Dice against training time) in ``--out``.
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
#: ``--trainers`` presets
PRESETS = {
    "ablations": DEFAULT_TRAINERS,
    "architectures": ("nnUNetTrainer", "nnUNetTrainerMSA2", "nnUNetTrainerFIAS", "nnUNetTrainerQTSeg",
                      "nnUNetTrainerAttnGate", "nnUNetTrainerCBAM", "nnUNetTrainerSE", "nnUNetTrainerSelectiveKernel"),
}


def trainer_list(spec: str) -> List[str]:
    """Comma-separated trainer names and preset names (``ablations``, ``architectures``), in order, unique."""
    names: List[str] = []
    for item in (t.strip() for t in spec.split(",")):
        for name in PRESETS.get(item, (item,) if item else ()):
            if name not in names:
                names.append(name)
    return names


def network_cost(trainer: str, ctx) -> Dict[str, float]:
    """Parameters (M) and forward GFLOPs of one patch (batch 1, deep supervision on, as trained) of the network
    ``trainer`` builds from the plan."""
    import torch

    from benchmarks.flop_count import flop_counter
    from benchmarks.networks import build_network, find_trainer_class

    net = build_network(find_trainer_class(trainer), ctx, deep_supervision=True)
    x = torch.zeros(1, ctx.num_input_channels, *ctx.configuration_manager.patch_size)
    with flop_counter() as counter:
        net(x)
    return {"params_m": sum(p.numel() for p in net.parameters()) / 1e6,
            "forward_gflops": counter.get_total_flops() / 1e9}


def budget_trainer(name: str) -> str:
    """The ``*_budget`` trainer that trains ``name`` on the environment's budget: one of ours, or one nnU-Net's
    lookup finds in the ``nnUNet_extTrainer`` folders (your own, made with
    ``nnunet_msa.training.budget_trainers.make_budget_variant``); a clear error if none exists."""
    from nnunet_msa import training

    candidate = name if name.endswith("_budget") else f"{name}_budget"
    if candidate in training.__all__:
        return candidate
    if os.environ.get("nnUNet_extTrainer"):
        from benchmarks.networks import find_trainer_class

        try:
            find_trainer_class(candidate)
            return candidate
        except Exception:  # nnU-Net raises a RuntimeError naming the folders it searched
            pass
    have = sorted(n[: -len("_budget")] for n in training.__all__ if n.endswith("_budget"))
    raise ValueError(f"no budget trainer {candidate!r} for {name!r}: the comparison trains each trainer as its "
                     f"'_budget' variant, which reads the budget from the environment. Ours: {have}. For another "
                     f"trainer T, put `T_budget = make_budget_variant(T, __name__)` (from "
                     f"nnunet_msa.training.budget_trainers) in a module of a folder on nnUNet_extTrainer.")


def ablation_table(result: Dict[str, Any], classes: List[str]) -> str:
    """Markdown: one row per trainer, Dice per class, foreground mean, and the times."""
    header = (["trainer"] + [f"Dice {c}" for c in classes]
              + ["mean Dice", "params M", "fwd GFLOPs / patch", "training s", "wall s"])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, r in result["results"].items():
        per = r["dice_per_class"]
        cost = [f"{r['params_m']:.2f}", f"{r['forward_gflops']:.2f}"] if "params_m" in r else ["–", "–"]
        lines.append("| " + " | ".join([f"`{name}`"] + [f"{per.get(c, float('nan')):.4f}" for c in classes]
                                       + [f"{r['foreground_dice']:.4f}"] + cost + [f"{r['training_time_s']:.0f}",
                                                                                   f"{r['wall_time_s']:.0f}"]) + " |")
    return "\n".join(lines)


def comparison_plot(result: Dict[str, Any], path: str, title: str) -> None:
    """Foreground Dice against training time, one labelled point per trainer (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, r in result["results"].items():
        ax.scatter(r["training_time_s"], r["foreground_dice"])
        ax.annotate(name.replace("nnUNetTrainer", "") or "nnU-Net", (r["training_time_s"], r["foreground_dice"]),
                    fontsize=8, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("training time (s, sum of nnU-Net's epoch times)")
    ax.set_ylabel("foreground Dice (nnU-Net's validation)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def build_parser(default_trainers: str = "ablations", default_out: str = "ablation") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--plan", default="hippocampus_2d", choices=sorted(PLANS))
    p.add_argument("--trainers", default=default_trainers,
                   help=f"comma-separated trainer names and presets ({', '.join(f'{k}: {v}' for k, v in PRESETS.items())})")
    p.add_argument("--workspace", default=None, help="nnU-Net workspace (default: <out>/workspace, reused)")
    p.add_argument("--data", default=os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                                  "..", "shared", "data"))
    p.add_argument("--out", default=os.path.join("benchmarks", "out", default_out))
    p.add_argument("--device", default="cpu")
    for flag in ("epochs", "iterations", "val-iterations", "batch-size", "train-cases", "val-cases"):
        p.add_argument(f"--{flag}", type=int, default=None, help="budget override (default: the plan's in "
                                                                 "benchmarks/accuracy.py)")
    return p


def main(argv: Optional[List[str]] = None, parser: Optional[argparse.ArgumentParser] = None,
         module: str = "benchmarks.ablation") -> int:
    args = (parser or build_parser()).parse_args(argv)
    plan = PLANS[args.plan]
    trainers = {t: budget_trainer(t) for t in trainer_list(args.trainers)}
    os.makedirs(args.out, exist_ok=True)
    ws = Workspace(args.workspace or os.path.join(args.out, "workspace"), args.data)
    ws.apply_to_process()
    prepare_dataset(ws, plan.dataset, [plan.configuration], preprocess=True)
    ctx = load_plan(ws, plan)
    budget = budget_for(plan, False, {"epochs": args.epochs, "iterations": args.iterations,
                                      "val_iterations": args.val_iterations, "batch_size": args.batch_size,
                                      "train_cases": args.train_cases, "val_cases": args.val_cases})
    print(f"{module} on {plan.name}: {budget} (default {DEFAULT_BUDGETS[plan.name]})", flush=True)
    result = run_accuracy(ws, plan, trainers, budget, ctx.dataset_json, args.device)
    for name, r in result["results"].items():
        r.update(network_cost(name, ctx))
    classes = [k for k in ctx.dataset_json["labels"] if k != "background"]
    table = ablation_table(result, classes)
    info = machine_info(args.device)
    md = (f"# Comparison on {plan.name}\n\nBudget: {budget.epochs} epochs × {budget.iterations} iterations, batch "
          f"{budget.batch_size}, {len(result['train_cases'])} training / {len(result['val_cases'])} validation "
          f"cases (fold 0), `{result['configuration']}`; every trainer the same. Machine: {info['cpu_model']}, "
          f"{info['usable_cores']} cores, torch {info['torch']}, nnU-Net {info['nnunetv2']}.\n\n"
          f"Command: `python -m {module} {' '.join(argv if argv is not None else sys.argv[1:])}`\n\n"
          f"{table}\n")
    comparison_plot(result, os.path.join(args.out, "comparison.png"),
                    f"{plan.name}: {budget.epochs}×{budget.iterations} iterations, batch {budget.batch_size}")
    with open(os.path.join(args.out, "ablation.md"), "w") as f:
        f.write(md)
    with open(os.path.join(args.out, "ablation.json"), "w") as f:
        json.dump({"plan": plan.name, "machine": info, **result}, f, indent=2, default=str)
    print(md, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
