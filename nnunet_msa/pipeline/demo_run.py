"""The demo's nnU-Net steps on a prepared workspace: plan and preprocess, a configuration with the demo's batch size,
then per trainer ``nnUNetv2_train``, ``nnUNetv2_predict`` of the held-out cases and their Dice; results written to the
workspace (``results.json``, ``results.md``). ``progress`` reports each step (``cli/demo.py`` prints it)."""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import time
from typing import Dict, List, Optional, Sequence, Tuple

from nnunet_msa.pipeline.commands import run_command
from nnunet_msa.pipeline.demo_data import DemoData, DemoError, prepare_data
from nnunet_msa.pipeline.dice import folder_dice
from nnunet_msa.pipeline.environment import nnunet_env
from nnunet_msa.pipeline.plans_edit import add_inherited_configuration, write_split
from nnunet_msa.pipeline.training_log import EpochProgress, epoch_times

DEFAULT_WORKSPACE = os.path.join(os.path.expanduser("~"), "nnunet_msa_demo")
MARKER = ".nnunet_msa_demo"


def prepare_workspace(path: Optional[str], overwrite: bool) -> str:
    """An absolute, empty (or demo-owned with ``overwrite``) workspace folder, created and marked."""
    if path is None:
        path = DEFAULT_WORKSPACE
        n = 2
        while os.path.exists(path) and os.listdir(path):
            path = f"{DEFAULT_WORKSPACE}_{n}"
            n += 1
    path = os.path.abspath(path)
    if os.path.isfile(path):
        raise DemoError(f"--workspace {path} is a file; give a folder")
    if os.path.isdir(path) and os.listdir(path):
        if not overwrite:
            raise DemoError(f"--workspace {path} is not empty; give another folder or add --overwrite")
        if not os.path.isfile(os.path.join(path, MARKER)):
            raise DemoError(f"--workspace {path} was not made by nnunet-msa demo (no {MARKER}); refusing to delete")
        for name in os.listdir(path):
            target = os.path.join(path, name)
            shutil.rmtree(target) if os.path.isdir(target) and not os.path.islink(target) else os.remove(target)
    os.makedirs(path, exist_ok=True)
    open(os.path.join(path, MARKER), "w").close()
    return path


def preprocessed_dir(env: Dict[str, str], data: DemoData) -> str:
    return os.path.join(env["nnUNet_preprocessed"], os.path.basename(data.dataset_dir))


def plan_and_preprocess(args: argparse.Namespace, data: DemoData, env: Dict[str, str], workspace: str,
                        progress) -> float:
    """``nnUNetv2_plan_and_preprocess`` for the chosen configuration; returns its wall time."""
    log = os.path.join(workspace, "logs", "plan_and_preprocess.log")
    progress.step(f"nnUNetv2_plan_and_preprocess -d {data.dataset_id} -c {args.configuration}", log)
    n = str(args.processes)
    # nnU-Net's planner calls torch.set_num_threads(nnUNet_n_proc_DA), which fails for the 0 that training uses
    plan_env = {**env, "nnUNet_n_proc_DA": n}
    cmd = ["nnUNetv2_plan_and_preprocess", "-d", str(data.dataset_id), "-c", args.configuration, "-np", n, "-npfp", n]
    if data.source != "synthetic":  # the generator's output is valid by construction; others get checked
        cmd.append("--verify_dataset_integrity")
    return run_command(cmd, plan_env, log_path=log, echo=args.verbose)


def choose_configuration(args: argparse.Namespace, data: DemoData, env: Dict[str, str],
                         progress) -> Tuple[str, int]:
    """(configuration to train, its batch size): the planned one, or one inheriting it with ``--batch-size``."""
    pre = preprocessed_dir(env, data)
    with open(os.path.join(pre, "nnUNetPlans.json")) as f:
        planned = json.load(f)["configurations"][args.configuration]
    planned_bs = int(planned["batch_size"])
    patch = planned["patch_size"]
    if args.batch_size <= 0 or args.batch_size == planned_bs:
        progress.say(f"  configuration {args.configuration}: patch {patch}, batch size {planned_bs} (as planned)")
        return args.configuration, planned_bs
    name = add_inherited_configuration(pre, args.configuration, f"{args.configuration}_bs{args.batch_size}",
                                       args.batch_size)
    progress.say(f"  configuration {name}: inherits {args.configuration} (patch {patch}), batch size "
                 f"{args.batch_size} instead of the planned {planned_bs}")
    return name, args.batch_size


def train(trainer: str, configuration: str, data: DemoData, env: Dict[str, str], workspace: str,
          args: argparse.Namespace, progress) -> float:
    """``nnUNetv2_train ID CONFIG 0 -tr TRAINER -device cpu``; returns its wall time."""
    log = os.path.join(workspace, "logs", f"train_{trainer}.log")
    progress.step(f"nnUNetv2_train {data.dataset_id} {configuration} 0 -tr {trainer} -device cpu: "
                  f"{args.epochs} epochs x {args.iterations} iterations", log)
    epochs = EpochProgress(args.epochs)

    def show(line: str) -> None:
        summary = epochs.feed(line)
        if summary and not args.verbose:
            progress.say("  " + summary)

    seconds = run_command(["nnUNetv2_train", str(data.dataset_id), configuration, "0", "-tr", trainer,
                           "-device", "cpu"], env, log_path=log, echo=args.verbose, on_line=show)
    progress.say(f"  trained in {seconds:.0f} s")
    return seconds


def predict(trainer: str, configuration: str, data: DemoData, env: Dict[str, str], workspace: str,
            args: argparse.Namespace, progress) -> Tuple[str, float]:
    """``nnUNetv2_predict`` on the held-out images; returns (output folder, wall time)."""
    out = os.path.join(workspace, "predictions", trainer)
    log = os.path.join(workspace, "logs", f"predict_{trainer}.log")
    progress.step(f"nnUNetv2_predict {len(data.test_ids)} held-out cases with {trainer}", log)
    cmd = ["nnUNetv2_predict", "-i", data.heldout_images, "-o", out, "-d", str(data.dataset_id), "-c",
           configuration, "-f", "0", "-tr", trainer, "-device", "cpu", "-npp", "1", "-nps", "1",
           "--disable_progress_bar"]
    if not args.tta:
        cmd.append("--disable_tta")
    seconds = run_command(cmd, env, log_path=log, echo=args.verbose)
    progress.say(f"  predicted in {seconds:.0f} s")
    return out, seconds


def nanmean(values: Sequence[float]) -> Optional[float]:
    """Mean of the non-NaN values, None when there are none."""
    finite = [v for v in values if v is not None and not math.isnan(v)]
    return sum(finite) / len(finite) if finite else None


def score(pred_dir: str, data: DemoData) -> Dict[str, object]:
    """Dice per foreground label (mean over held-out cases), their mean, and per-case values."""
    per_label = folder_dice(pred_dir, data.heldout_labels, list(data.labels.values()), data.file_ending)
    cases = sorted(data.test_ids)
    dice = {name: nanmean(per_label[value]) for name, value in data.labels.items()}
    per_case = {case: {name: _none_if_nan(per_label[value][i]) for name, value in data.labels.items()}
                for i, case in enumerate(cases)}
    return {"dice": dice, "mean_dice": nanmean([d for d in dice.values() if d is not None]), "dice_per_case": per_case}


def _none_if_nan(value: float) -> Optional[float]:
    return None if math.isnan(value) else value


def run_pipeline(args: argparse.Namespace, workspace: str, progress) -> dict:
    """All steps; returns the results dict (also written to the workspace)."""
    env = nnunet_env(workspace, epochs=args.epochs, iterations=args.iterations, val_iterations=args.val_iterations,
                     extra={"nnUNet_def_n_proc": str(args.processes)})
    timings: Dict[str, float] = {}
    t = time.time()
    data = prepare_data(args, workspace, env, progress)
    timings["prepare_data"] = time.time() - t
    progress.say(f"  {len(data.train_ids)} training, {len(data.val_ids)} validation, {len(data.test_ids)} held-out "
                 f"cases; labels {data.labels}")
    timings["plan_and_preprocess"] = plan_and_preprocess(args, data, env, workspace, progress)
    configuration, batch_size = choose_configuration(args, data, env, progress)
    write_split(preprocessed_dir(env, data), data.train_ids, data.val_ids)
    result = {"workspace": workspace, "source": data.source, "dataset_id": data.dataset_id,
              "dataset": os.path.basename(data.dataset_dir), "configuration": configuration,
              "base_configuration": args.configuration, "batch_size": batch_size,
              "budget": {"epochs": args.epochs, "iterations_per_epoch": args.iterations,
                         "val_iterations_per_epoch": args.val_iterations},
              "tta": args.tta, "labels": data.labels, "train_cases": data.train_ids,
              "val_cases": data.val_ids, "test_cases": data.test_ids, "trainers": {}, "timings": timings}
    for trainer in args.trainers:
        result["trainers"][trainer] = run_trainer(trainer, configuration, data, env, workspace, args, progress)
        write_results(result, workspace)
    timings["total"] = progress.elapsed()
    write_results(result, workspace)
    return result


def run_trainer(trainer: str, configuration: str, data: DemoData, env: Dict[str, str], workspace: str,
                args: argparse.Namespace, progress) -> dict:
    """Train, predict the held-out cases and score one trainer."""
    train_seconds = train(trainer, configuration, data, env, workspace, args, progress)
    pred_dir, predict_seconds = predict(trainer, configuration, data, env, workspace, args, progress)
    scores = score(pred_dir, data)
    progress.say("  Dice on held-out cases: " + ", ".join(f"{k} {_fmt(v)}" for k, v in scores["dice"].items()))
    train_log = os.path.join(workspace, "logs", f"train_{trainer}.log")
    epochs = epoch_times(train_log)
    return {**scores, "train_seconds": train_seconds, "predict_seconds": predict_seconds,
            "epoch_seconds": epochs, "seconds_per_iteration": (sum(epochs) / (len(epochs) * args.iterations)
                                                               if epochs else None),
            "predictions": pred_dir, "train_log": train_log,
            "predict_log": os.path.join(workspace, "logs", f"predict_{trainer}.log")}


def _fmt(value: Optional[float], digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def table_rows(result: dict) -> Tuple[List[str], List[List[str]]]:
    """Header and rows of the results table."""
    labels = list(result["labels"])
    header = ["trainer"] + [f"Dice {name}" for name in labels] + ["mean Dice", "train s", "s/iter", "predict s"]
    rows = []
    for trainer, r in result["trainers"].items():
        rows.append([trainer] + [_fmt(r["dice"][name]) for name in labels] + [
            _fmt(r["mean_dice"]), f"{r['train_seconds']:.0f}", _fmt(r["seconds_per_iteration"], 2),
            f"{r['predict_seconds']:.0f}"])
    return header, rows


def format_markdown(result: dict) -> str:
    """The table as markdown."""
    header, rows = table_rows(result)
    b = result["budget"]
    lines = [f"# nnunet-msa demo: {result['dataset']}", "",
             f"Source: {result['source']}. Configuration {result['configuration']} (batch {result['batch_size']}), "
             f"{b['epochs']} epochs x {b['iterations_per_epoch']} iterations per trainer, "
             f"{len(result['train_cases'])} training / {len(result['val_cases'])} validation cases; Dice on "
             f"{len(result['test_cases'])} held-out cases (test-time mirroring: {result['tta']}).", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    total = result["timings"].get("total")
    if total is not None:
        lines += ["", f"Total wall time: {total:.0f} s."]
    return "\n".join(lines) + "\n"


def write_results(result: dict, workspace: str) -> None:
    """``results.json`` and ``results.md`` in the workspace."""
    with open(os.path.join(workspace, "results.json"), "w") as f:
        json.dump(result, f, indent=2)
    with open(os.path.join(workspace, "results.md"), "w") as f:
        f.write(format_markdown(result))
