"""What a user waits for: the real ``nnUNetv2_train`` loop (data loading and augmentation workers sharing the cores
with the network) and ``nnUNetv2_predict`` on the held-back test volumes, for nnU-Net's default and MSA2, one after
the other on the same plan, budget, seed and workers.

The isolated-step benchmark (``benchmarks.run``) times the network alone; here the iteration time is nnU-Net's own
logged epoch time over the run (validation of one batch per epoch included) divided by the iterations, and the
prediction time is the wall time of ``nnUNetv2_predict`` on the protocol's test set (mirroring on, one process).
Runs go through the accuracy protocol's runner (``benchmarks.protocol.runner``) into their own folder (never its
cache): a timing is only worth its machine state, so nothing is reused.

    python -m benchmarks.real_loop                          # hippocampus 2d, batch 32, 1000 iterations, DA 2
    python -m benchmarks.real_loop --iterations 200 --trainers nnUNetTrainer,nnUNetTrainerMSA2
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Dict, List

from benchmarks.protocol.design import PROTOCOL_PLANS, prepare_split, run_key
from benchmarks.protocol.runner import execute_run
from benchmarks.workspace import Workspace, prepare_dataset

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def measure(ws: Workspace, plan: str, trainers: List[str], iterations: int, seed: int = 0, n_proc_da: int = 2,
            device: str = "cpu", max_test: int = None, log=print) -> Dict[str, Any]:
    """Train and predict every trainer once (in the order given); per trainer the iteration time, training and
    prediction wall times and the load during training; ratios to the first trainer."""
    pplan = PROTOCOL_PLANS[plan]
    prepare_dataset(ws, pplan.plan.dataset, [pplan.plan.configuration], preprocess=True)
    split = prepare_split(ws.raw_dir(pplan.plan.dataset), ws.preprocessed_dir(pplan.plan.dataset), pplan, max_test)
    out: Dict[str, Any] = {"plan": plan, "iterations": iterations, "batch_size": pplan.batch_size,
                           "n_proc_DA": n_proc_da, "test_cases": len(split.test), "runs": {}}
    for trainer in trainers:
        key = run_key(pplan, trainer, iterations, seed, split)
        log(f"[real loop] {plan}: {trainer}, {iterations} iterations")
        rec = execute_run(ws, pplan, split, key, device, n_proc_da, keep_checkpoint=False, log=log)
        out["runs"][trainer] = {
            "iteration_time_s": rec["training_time_s"] / iterations, "training_time_s": rec["training_time_s"],
            "train_wall_s": rec["train_wall_s"], "predict_wall_s": rec["predict_wall_s"],
            "load_during_training": rec["load_during_training"],
            "test_dice_mean": sum(sum(d.values()) / len(d) for d in rec["test_dice"].values()) / len(rec["test_dice"]),
        }
    first = out["runs"][trainers[0]]
    for t, r in out["runs"].items():
        r["iteration_ratio"] = r["iteration_time_s"] / first["iteration_time_s"]
        r["train_wall_ratio"] = r["train_wall_s"] / first["train_wall_s"]
        r["predict_ratio"] = r["predict_wall_s"] / first["predict_wall_s"]
    return out


def markdown(result: Dict[str, Any]) -> str:
    lines = [f"Real loop, {result['plan']}: `nnUNetv2_train` batch {result['batch_size']}, {result['iterations']} "
             f"iterations, nnUNet_n_proc_DA={result['n_proc_DA']}; `nnUNetv2_predict` of {result['test_cases']} "
             f"test volumes (mirroring on)", "",
             "| trainer | s / iteration | ratio | training wall s | ratio | prediction s | ratio | mean load |",
             "|---|---|---|---|---|---|---|---|"]
    for t, r in result["runs"].items():
        load = r["load_during_training"]["mean"]
        lines.append(f"| `{t}` | {r['iteration_time_s']:.3f} | {r['iteration_ratio']:.2f}× | {r['train_wall_s']:.0f} | "
                     f"{r['train_wall_ratio']:.2f}× | {r['predict_wall_s']:.0f} | {r['predict_ratio']:.2f}× | "
                     + ("–" if load is None else f"{load:.2f}") + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.real_loop", description=__doc__.split("\n\n")[0])
    p.add_argument("--plan", default="hippocampus_2d", choices=sorted(PROTOCOL_PLANS))
    p.add_argument("--trainers", default="nnUNetTrainer,nnUNetTrainerMSA2", help="the first is the reference")
    p.add_argument("--iterations", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-proc-da", type=int, default=2)
    p.add_argument("--max-test-cases", type=int, default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--data", default=os.path.join(REPO, "..", "shared", "data"))
    p.add_argument("--workspace", default=os.path.join(HERE, "out", "real_loop_workspace"))
    p.add_argument("--out", default=os.path.join(HERE, "out", "real_loop.json"))
    args = p.parse_args(argv)
    ws = Workspace(args.workspace, args.data)
    result = measure(ws, args.plan, [t.strip() for t in args.trainers.split(",") if t.strip()], args.iterations,
                     args.seed, args.n_proc_da, args.device, args.max_test_cases,
                     log=lambda m: print(m, flush=True))
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print("\n" + markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
