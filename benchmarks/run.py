"""``python -m benchmarks.run``: nnU-Net's default network/trainer against MSA2 on real nnU-Net plans, side by side
in one run (interleaved repeats), reported as MSA2/nnU-Net ratios.

Per plan (hippocampus and ACDC, 2d and 3d_fullres): parameters, training-step time and FLOPs, peak memory of a
step (fresh subprocess per measurement), nnU-Net's planner memory estimate, sliding-window prediction time of one
whole case, and (unless ``--skip-accuracy``) Dice at an equal small budget with the real ``nnUNetv2_train``.
Writes ``results.md``, ``results.json`` and ``results.png`` to ``--out`` and prints the markdown.

Examples::

    python -m benchmarks.run                                   # everything, default budget (~1 h+ on 2 cores)
    python -m benchmarks.run --quick --plans hippocampus_2d --skip-accuracy      # smoke run, minutes
    python -m benchmarks.run --plans acdc_2d --batch-size 4 --repeats 7 --skip-accuracy
    python -m benchmarks.run --msa2-trainer MyMSA2Variant --msa2-budget-trainer MyMSA2Variant_budget
"""
from __future__ import annotations

import argparse
import gc
import json
import math
import os
import shlex
import sys
import time
import traceback
from datetime import datetime
from typing import Any, Callable, Dict, List, Optional

import torch

from benchmarks import accuracy as acc_mod
from benchmarks.catalog import DEFAULT_PLANS, PLANS, PlanSpec, parse_plans
from benchmarks.memory_probe import MALLOC_ENV, measure_interleaved
from benchmarks.networks import BASELINE, MSA2, build_network, count_parameters, trainer_classes
from benchmarks.planner_estimate import planner_estimate, planner_reference
from benchmarks.plot import plot
from benchmarks.prediction_time import make_predictor, preprocess_case, quick_crop, select_case, \
    sliding_window_work, time_prediction_interleaved
from benchmarks.report import write_outputs
from benchmarks.stats import paired_ratios, ratio, summarize
from benchmarks.step_cost import CPU_VOXELS_PER_STEP, QUICK_VOXELS_PER_STEP, default_batch_size, \
    make_step_setup, time_steps_interleaved
from benchmarks.system_info import machine_info, usable_cores
from benchmarks.workspace import Workspace, load_plan, prepare_dataset

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--plans", default=",".join(DEFAULT_PLANS),
                   help="comma-separated plans or 'all' (default: %(default)s)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run of minutes: tiny batch, 1 repeat, tiny accuracy budget (not a measurement)")
    p.add_argument("--skip-accuracy", action="store_true", help="no nnUNetv2_train runs")
    p.add_argument("--skip-memory", action="store_true", help="no peak-memory subprocesses")
    p.add_argument("--skip-prediction", action="store_true", help="no sliding-window prediction timing")
    p.add_argument("--compile", action="store_true",
                   help="also time the training step of both networks under torch.compile (inductor; minutes of "
                        "compilation per network): what GPU users, for whom nnU-Net compiles by default, see")
    p.add_argument("--real-loop-iterations", type=int, default=0,
                   help="also run the real nnUNetv2_train loop (hippocampus 2d, batch 32, nnUNet_n_proc_DA=2) of "
                        "both trainers for this many iterations, then nnUNetv2_predict of the held-back test "
                        "volumes (benchmarks.real_loop; 1000 in the issue's table)")
    p.add_argument("--refresh-estimates", action="store_true",
                   help="measure nothing: recompute the planner estimates (deterministic, no timing) of OUT/results.json "
                        "with the current code and rewrite OUT/results.{md,png}")
    p.add_argument("--out", default=os.path.join(HERE, "out"), help="output folder (default: %(default)s)")
    p.add_argument("--workspace", default=None,
                   help="nnU-Net workspace, reused between runs (default: OUT/workspace)")
    p.add_argument("--data", default=os.environ.get("NNUNET_MSA_SHARED_DATA",
                                                   os.path.join(os.path.dirname(REPO), "shared", "data")),
                   help="shared data folder with Task04_Hippocampus/ and ACDC/ (default: $NNUNET_MSA_SHARED_DATA "
                        "or ../shared/data beside the repository: %(default)s)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: %(default)s)")
    p.add_argument("--threads", type=int, default=usable_cores(),
                   help="torch threads for all in-process measurements and memory probes (default: all usable "
                        "cores, %(default)s)")
    p.add_argument("--np", type=int, default=None, help="processes for nnU-Net conversion/planning/preprocessing "
                                                        "(default: --threads)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="batch for step time, FLOPs and memory (default: planned on CUDA; on CPU the planned batch "
                        f"capped at {CPU_VOXELS_PER_STEP} voxels per step, {QUICK_VOXELS_PER_STEP} with --quick)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up steps per network (default 2, quick 1)")
    p.add_argument("--repeats", type=int, default=None, help="timed step rounds A,B (default 5, quick 1)")
    p.add_argument("--memory-repeats", type=int, default=None, help="memory probes per network (default 2, quick 1)")
    p.add_argument("--prediction-repeats", type=int, default=None,
                   help="whole-case predictions per network (default 3, quick 1)")
    p.add_argument("--baseline-trainer", default="nnUNetTrainer")
    p.add_argument("--msa2-trainer", default="nnUNetTrainerMSA2",
                   help="trainer class whose build_network_architecture (class attributes) makes the MSA2 network")
    p.add_argument("--baseline-budget-trainer", default="nnUNetTrainer_budget")
    p.add_argument("--msa2-budget-trainer", default="nnUNetTrainerMSA2_budget")
    g = p.add_argument_group("accuracy budget (overrides every selected plan's default; see benchmarks/accuracy.py)")
    g.add_argument("--epochs", type=int, default=None)
    g.add_argument("--iterations", type=int, default=None, help="training iterations per epoch")
    g.add_argument("--val-iterations", type=int, default=None, help="nnU-Net's per-epoch pseudo-validation batches")
    g.add_argument("--accuracy-batch-size", type=int, default=None)
    g.add_argument("--train-cases", type=int, default=None)
    g.add_argument("--val-cases", type=int, default=None)
    return p


def _defaults(args: argparse.Namespace) -> None:
    for name, full, quick in (("warmup", 2, 1), ("repeats", 5, 1), ("memory_repeats", 2, 1),
                              ("prediction_repeats", 3, 1)):
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    args.np = args.np or args.threads
    args.workspace = args.workspace or os.path.join(args.out, "workspace")


def _log(msg: str) -> None:
    print(msg, flush=True)


def _attempt(result: Dict[str, Any], what: str, fn: Callable[[], Any]) -> Any:
    """Run one measurement; on failure record the traceback in ``result['errors']`` and go on."""
    try:
        return fn()
    except Exception:  # noqa: BLE001 - a failed measurement is a result to report
        tb = traceback.format_exc()
        result.setdefault("errors", {})[what] = tb
        _log(f"  !! {what} failed:\n{tb}")
        return None


def method_notes(args: argparse.Namespace) -> List[str]:
    return [
        "Networks are built by the trainer classes' `build_network_architecture(plans_manager, "
        "configuration_manager, n_in, n_out, deep_supervision)` from the workspace's real plans, freshly "
        "initialized (seed 0).",
        "Training step = nnU-Net's `train_step` (zero_grad, forward, the trainer's own `_build_loss`: DC+CE in "
        "DeepSupervisionWrapper, backward, grad-norm clip 12, SGD Nesterov 0.99 from `configure_optimizers`) on a "
        "synthetic batch (normal images, uniform random labels, nearest-downsampled per deep-supervision scale). "
        f"Warm-up {args.warmup} step(s) per network, then {args.repeats} interleaved rounds A, B; median "
        "[min–max]; the ratio is of the medians, 'pairs' the range of per-round ratios.",
        "FLOPs: `torch.utils.flop_counter.FlopCounterMode` over forward+loss and backward of the first warm-up step "
        "(convolutions and matrix products only, 2 FLOPs per multiply-add; element-wise work such as norms, SACM "
        "mixing and MASAG products is not counted). Multiply-adds per voxel = forward FLOPs / 2 / (batch · patch "
        "voxels).",
        "Peak memory: a fresh subprocess per measurement (interleaved); CPU: one warm-up step, then the kernel's "
        "peak-RSS mark (VmHWM) is reset and peak RSS during one step minus RSS just before it is reported "
        f"(glibc {', '.join(f'{k}={v}' for k, v in MALLOC_ENV.items())} so freed tensors leave the resident set); "
        "CUDA: max_memory_allocated minus memory_allocated before the step.",
        "Planner estimate: `network.compute_conv_feature_map_size(patch_size)` (what nnU-Net's ExperimentPlanner "
        "compares with its reference value), and the batch the planner's rule gives at the planned patch with the "
        "default 8 GB target (before its 5 %-of-dataset cap).",
        "Prediction: `nnUNetPredictor.manual_initialization` with each network (deep supervision off, fresh "
        "weights), `predict_sliding_window_return_logits` on the median-size case preprocessed by the plan's "
        "preprocessor; tile step 0.5, Gaussian, mirroring on the trainer's axes, perform_everything_on_device=False.",
        "Accuracy: real `nnUNetv2_train DATASET CONFIG 0 -tr <budget trainer> -device <device>` on a written split "
        "(patients kept together) with an inherited smaller-batch configuration; Dice from nnU-Net's "
        "`fold_0/validation/summary.json`; wall time of the command (start-up and final validation included) and "
        "the sum of nnU-Net's logged epoch times. Tiny budgets: the Dice compares early learning, not final "
        "accuracy.",
        "Ratios are MSA2 / nnU-Net; for cost, lower is better and the design floor is 1.5×.",
    ]


def _options_note(classes: Dict[str, type], budget_classes: Dict[str, type]) -> Optional[str]:
    a = getattr(classes[MSA2], "msa2_options", None)
    b = getattr(budget_classes[MSA2], "msa2_options", None)
    if a != b:
        return (f"MSA2 options differ between the cost trainer ({classes[MSA2].__name__}: {a}) and the accuracy "
                f"trainer ({budget_classes[MSA2].__name__}: {b})")
    return None


def benchmark_plan(args: argparse.Namespace, ws: Workspace, plan: PlanSpec, classes: Dict[str, type],
                   names: Dict[str, str], budget_names: Dict[str, str]) -> Dict[str, Any]:
    """Every measurement of one plan, both networks."""
    ctx = load_plan(ws, plan)
    voxel_budget = QUICK_VOXELS_PER_STEP if args.quick else CPU_VOXELS_PER_STEP
    if args.batch_size:
        batch, note = args.batch_size, "--batch-size"
    else:
        batch = default_batch_size(ctx, args.device, voxel_budget)
        note = ("planned" if batch == ctx.planned_batch_size else
                f"CPU default: planned batch capped at {voxel_budget} voxels per step")
    r: Dict[str, Any] = {"plan": plan.name, "dataset": plan.dataset.dataset_name,
                         "configuration": plan.configuration, "patch_size": ctx.patch_size,
                         "planned_batch_size": ctx.planned_batch_size, "batch_size": batch, "batch_note": note,
                         "network_class_in_plans": ctx.configuration_manager.network_arch_class_name,
                         "trainers": dict(names), "ratios": {}}
    _log(f"\n=== {plan.name}: patch {ctx.patch_size}, planned batch {ctx.planned_batch_size}, using {batch} ({note})")

    def step_part() -> None:
        setups = {k: make_step_setup(classes[k], ctx, batch, args.device) for k in (BASELINE, MSA2)}
        r["parameters"] = {k: count_parameters(s.network) for k, s in setups.items()}
        ref = planner_reference(ctx)
        r["planner"] = {"reference": ref, **{k: planner_estimate(s.network, ctx, ref) for k, s in setups.items()}}
        _log(f"  step time: warm-up {args.warmup}, {args.repeats} interleaved repeats")
        times = time_steps_interleaved(setups, args.warmup, args.repeats, log=_log)
        r["step_time_s"] = {k: summarize(v) for k, v in times.items()}
        r["flops_per_step"] = {k: s.flops for k, s in setups.items()}
        voxels = float(batch * math.prod(ctx.patch_size))
        r["forward_macs_per_voxel"] = {k: s.flops["forward"] / 2 / voxels for k, s in setups.items()}
        setups.clear()
        gc.collect()

    _attempt(r, "step time / FLOPs / planner estimate", step_part)

    if args.compile:
        def compile_part() -> None:
            setups = {k: make_step_setup(classes[k], ctx, batch, args.device) for k in (BASELINE, MSA2)}
            for s in setups.values():
                s.network = torch.compile(s.network)
            _log("  step time under torch.compile (inductor): the warm-up compiles")
            times = time_steps_interleaved(setups, max(2, args.warmup), args.repeats, log=_log)
            r["step_time_compiled_s"] = {k: summarize(v) for k, v in times.items()}
            setups.clear()
            gc.collect()
        _attempt(r, "compiled step time", compile_part)

    if not args.skip_memory:
        def memory_part() -> None:
            _log(f"  peak memory: {args.memory_repeats} fresh-process probe(s) per network")
            probes = measure_interleaved(ws.root, ws.data_root, plan.name, names, batch, args.threads, args.device,
                                         args.memory_repeats, log=_log)
            r["memory"] = {k: {"summary": summarize([p["step_bytes"] for p in v]), "probes": v}
                           for k, v in probes.items()}
        _attempt(r, "peak memory", memory_part)

    if not args.skip_prediction:
        def prediction_part() -> None:
            case = select_case(ctx)
            data, _ = preprocess_case(ctx, case)
            full_shape = list(data.shape)
            if args.quick:
                data = quick_crop(data, ctx.patch_size)
            tensor = torch.from_numpy(data)
            predictors = {k: make_predictor(classes[k], ctx, args.device) for k in (BASELINE, MSA2)}
            work = sliding_window_work(predictors[BASELINE], tensor)
            _log(f"  prediction: case {case}, preprocessed shape {list(data.shape)}, {work['tiles']} tiles × "
                 f"{work['mirror_evaluations_per_tile']} mirrorings, {args.prediction_repeats} repeat(s)")
            times = time_prediction_interleaved(predictors, tensor, args.prediction_repeats, log=_log)
            r["prediction"] = {"case": case, "shape": list(data.shape), "case_shape": full_shape, "work": work,
                               "time_s": {k: summarize(v) for k, v in times.items()}}
        _attempt(r, "prediction time", prediction_part)

    if not args.skip_accuracy:
        def accuracy_part() -> None:
            budget = acc_mod.budget_for(plan, args.quick, {
                "epochs": args.epochs, "iterations": args.iterations, "val_iterations": args.val_iterations,
                "batch_size": args.accuracy_batch_size, "train_cases": args.train_cases,
                "val_cases": args.val_cases})
            _log(f"  accuracy: {budget}")
            r["accuracy"] = acc_mod.run_accuracy(ws, plan, budget_names, budget, ctx.dataset_json, args.device,
                                                 log=_log)
        _attempt(r, "accuracy (nnUNetv2_train)", accuracy_part)

    _ratios(r)
    return r


def _ratios(r: Dict[str, Any]) -> None:
    q = r["ratios"]
    if "parameters" in r:
        q["parameters"] = ratio(r["parameters"][MSA2], r["parameters"][BASELINE])
    if "step_time_s" in r:
        q["step_time"] = paired_ratios(r["step_time_s"][MSA2]["values"], r["step_time_s"][BASELINE]["values"])
        q["flops"] = ratio(r["flops_per_step"][MSA2]["total"], r["flops_per_step"][BASELINE]["total"])
    if "step_time_compiled_s" in r:
        c = r["step_time_compiled_s"]
        q["step_time_compiled"] = paired_ratios(c[MSA2]["values"], c[BASELINE]["values"])
    if "planner" in r:
        q["feature_map_estimate"] = ratio(r["planner"][MSA2]["feature_map_elements"],
                                          r["planner"][BASELINE]["feature_map_elements"])
    if "memory" in r:
        q["peak_memory"] = paired_ratios(r["memory"][MSA2]["summary"]["values"],
                                         r["memory"][BASELINE]["summary"]["values"])
    if "prediction" in r:
        t = r["prediction"]["time_s"]
        q["prediction_time"] = paired_ratios(t[MSA2]["values"], t[BASELINE]["values"])
    res = (r.get("accuracy") or {}).get("results") or {}
    if MSA2 in res and BASELINE in res:
        q["foreground_dice"] = ratio(res[MSA2]["foreground_dice"], res[BASELINE]["foreground_dice"])
        q["training_wall_time"] = ratio(res[MSA2]["wall_time_s"], res[BASELINE]["wall_time_s"])
        q["training_time"] = ratio(res[MSA2]["training_time_s"], res[BASELINE]["training_time_s"])


def refresh_estimates(args: argparse.Namespace) -> int:
    """Recompute ``planner`` (and the ratios) of every plan in OUT/results.json with the current networks."""
    md_path, json_path, png_path = (os.path.join(args.out, f"results.{e}") for e in ("md", "json", "png"))
    with open(json_path) as f:
        run = json.load(f)
    ws = Workspace(args.workspace, args.data, n_proc=args.np)
    ws.apply_to_process()
    for r in run["results"]:
        ctx = load_plan(ws, PLANS[r["plan"]])
        classes = trainer_classes(r["trainers"][BASELINE], r["trainers"][MSA2])
        ref = planner_reference(ctx)
        r["planner"] = {"reference": ref, **{k: planner_estimate(build_network(classes[k], ctx, True), ctx, ref)
                                             for k in (BASELINE, MSA2)}}
        _ratios(r)
    run["method_notes"].append(f"Planner estimates recomputed on {datetime.now().isoformat(timespec='seconds')} "
                               f"with `--refresh-estimates` (the estimate code changed after the run; every other "
                               f"figure is from the run).")
    text = write_outputs(run, md_path, json_path)
    plot(run["results"], png_path, title=f"{run['machine']['cpu_model']}, {run['settings']['threads']} threads, "
                                         f"torch {run['machine']['torch']}")
    print(text)
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    _defaults(args)
    if args.refresh_estimates:
        return refresh_estimates(args)
    started = time.time()
    torch.set_num_threads(args.threads)
    plans = parse_plans(args.plans)
    os.makedirs(args.out, exist_ok=True)
    ws = Workspace(args.workspace, args.data, n_proc=args.np)
    ws.apply_to_process()

    names = {BASELINE: args.baseline_trainer, MSA2: args.msa2_trainer}
    budget_names = {BASELINE: args.baseline_budget_trainer, MSA2: args.msa2_budget_trainer}
    classes = trainer_classes(names[BASELINE], names[MSA2])
    notes = method_notes(args)
    if not args.skip_accuracy:
        mismatch = _options_note(classes, trainer_classes(budget_names[BASELINE], budget_names[MSA2]))
        if mismatch:
            _log(f"WARNING: {mismatch}")
            notes.append("WARNING: " + mismatch)

    by_dataset: Dict[str, List[str]] = {}
    for plan in plans:
        by_dataset.setdefault(plan.dataset.key, []).append(plan.configuration)
    for plan in plans:
        configs = by_dataset.pop(plan.dataset.key, None)
        if configs is not None:
            prepare_dataset(ws, plan.dataset, configs, preprocess=not args.skip_accuracy)

    run: Dict[str, Any] = {
        "started": datetime.now().isoformat(timespec="seconds"),
        "command": " ".join(shlex.quote(a) for a in [sys.executable, "-m", "benchmarks.run"] + list(
            sys.argv[1:] if argv is None else argv)),
        "machine": machine_info(args.device),
        "settings": {k: v for k, v in vars(args).items()},
        "method_notes": notes,
        "results": [],
    }
    md_path, json_path, png_path = (os.path.join(args.out, f"results.{e}") for e in ("md", "json", "png"))
    text = ""
    for plan in plans:
        run["results"].append(benchmark_plan(args, ws, plan, classes, names, budget_names))
        run["elapsed_s"] = time.time() - started
        text = write_outputs(run, md_path, json_path)  # after every plan, so partial results survive
        plot(run["results"], png_path, title=f"{run['machine']['cpu_model']}, {args.threads} threads, "
                                             f"torch {run['machine']['torch']}")
    if args.real_loop_iterations:
        from benchmarks import real_loop

        rl = _attempt(run, "real loop", lambda: real_loop.measure(
            Workspace(os.path.join(args.out, "real_loop_workspace"), args.data, n_proc=args.np), "hippocampus_2d",
            [names[BASELINE], names[MSA2]], args.real_loop_iterations, log=_log))
        if rl is not None:
            run["real_loop"] = rl
        run["elapsed_s"] = time.time() - started
        text = write_outputs(run, md_path, json_path)
    print("\n" + text)
    print(f"wrote {md_path}, {json_path}, {png_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
