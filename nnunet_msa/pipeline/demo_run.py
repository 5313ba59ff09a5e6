"""The demo's workspace (outside any checkout by default; a warning inside nnunet-msa's) and its nnU-Net steps: plan
and preprocess, a configuration with the demo's batch size, then per trainer ``nnUNetv2_train`` (a progress line
after each epoch, ``demo_progress.py``), ``nnUNetv2_predict`` of the held-out cases and their Dice; results written
to the workspace (``results.json``, ``results.md`` from ``demo_report.py``). ``progress`` reports each step
(``cli/demo.py`` prints it: ``say`` for lines, ``live`` for the epoch lines)."""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import time
from typing import Dict, List, Optional, Sequence, Tuple

from nnunet_msa.pipeline.commands import run_command
from nnunet_msa.pipeline.demo_data import DemoData, DemoError, prepare_data
from nnunet_msa.pipeline.demo_progress import DemoClock, TrainingMonitor, plural, unbuffered
from nnunet_msa.pipeline.demo_report import format_markdown
from nnunet_msa.pipeline.dice import folder_dice
from nnunet_msa.pipeline.environment import nnunet_env
from nnunet_msa.pipeline.plans_edit import add_inherited_configuration, write_split
from nnunet_msa.pipeline.training_log import epoch_times

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


def nnunet_msa_checkout(path: str) -> Optional[str]:
    """The top folder of the git checkout of nnunet-msa that ``path`` lies in, else None (the nearest folder above
    ``path`` with a ``.git`` is the checkout; it is nnunet-msa's when it holds ``nnunet_msa/`` and a ``setup.cfg``
    naming the package)."""
    folder = os.path.abspath(path)
    while True:
        if os.path.exists(os.path.join(folder, ".git")):
            return folder if _is_nnunet_msa_source(folder) else None
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent


def _is_nnunet_msa_source(folder: str) -> bool:
    setup_cfg = os.path.join(folder, "setup.cfg")
    if not (os.path.isdir(os.path.join(folder, "nnunet_msa")) and os.path.isfile(setup_cfg)):
        return False
    with open(setup_cfg, errors="replace") as f:
        return any(line.replace(" ", "").strip() == "name=nnunet-msa" for line in f)


def _git_ignores(checkout: str, folder: str) -> Optional[bool]:
    """Whether git ignores ``folder`` in ``checkout``; None when git cannot tell (not installed, error). The trailing
    slash makes git match directory patterns (``nnunet_msa_demo*/``) even before the folder exists."""
    try:
        code = subprocess.run(["git", "-C", checkout, "check-ignore", "-q", folder.rstrip(os.sep) + os.sep],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30).returncode
    except (OSError, subprocess.SubprocessError):
        return None
    return {0: True, 1: False}.get(code)


def workspace_warning(workspace: str) -> Optional[str]:
    """A warning when ``workspace`` lies inside a git checkout of nnunet-msa, else None. Not a refusal: the demo only
    writes into an empty or demo-made folder, so the checkout's own files are safe; but the workspace fills with
    nnU-Net's datasets, checkpoints and predictions that do not belong in the repository."""
    checkout = nnunet_msa_checkout(workspace)
    if checkout is None:
        return None
    ignored = _git_ignores(checkout, workspace)
    git_note = {True: "git ignores it there", False: "git does not ignore it: `git status` lists its files and "
                "`git add -A` would commit nnU-Net's data and checkpoints",
                None: "unless git ignores it, `git status` lists its files"}[ignored]
    return (f"warning: the workspace {workspace} is inside the nnunet-msa checkout {checkout} ({git_note}); a "
            f"workspace outside the checkout, like the default {DEFAULT_WORKSPACE}, keeps the two apart")


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
          args: argparse.Namespace, progress, monitor: TrainingMonitor) -> float:
    """``nnUNetv2_train ID CONFIG 0 -tr TRAINER -device cpu``, with a progress line after each epoch (``monitor``);
    returns its wall time."""
    log = os.path.join(workspace, "logs", f"train_{trainer}.log")
    progress.step(f"nnUNetv2_train {data.dataset_id} {configuration} 0 -tr {trainer} -device cpu: "
                  f"{plural(args.epochs, 'epoch')} x {plural(args.iterations, 'iteration')}", log)

    def show(line: str) -> None:
        summary = monitor.feed(line)
        if summary and not args.verbose:
            progress.live("  " + summary)

    seconds = run_command(["nnUNetv2_train", str(data.dataset_id), configuration, "0", "-tr", trainer,
                           "-device", "cpu"], unbuffered(env), log_path=log, echo=args.verbose, on_line=show)
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
    clock = DemoClock(args.trainers)
    for index, trainer in enumerate(args.trainers):
        monitor = TrainingMonitor(trainer, index, args.epochs, _label_names(data), clock)
        result["trainers"][trainer] = run_trainer(trainer, configuration, data, env, workspace, args, progress,
                                                  monitor)
        clock.trainer_finished(monitor.seconds_since_last_epoch())
        write_results(result, workspace)
    timings["total"] = progress.elapsed()
    write_results(result, workspace)
    return result


def _label_names(data: DemoData) -> List[str]:
    """Foreground label names in nnU-Net's order of its pseudo Dice (by label value)."""
    return [name for name, value in sorted(data.labels.items(), key=lambda kv: kv[1])]


def run_trainer(trainer: str, configuration: str, data: DemoData, env: Dict[str, str], workspace: str,
                args: argparse.Namespace, progress, monitor: TrainingMonitor) -> dict:
    """Train, predict the held-out cases and score one trainer."""
    train_seconds = train(trainer, configuration, data, env, workspace, args, progress, monitor)
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


def write_results(result: dict, workspace: str) -> None:
    """``results.json`` and ``results.md`` in the workspace."""
    with open(os.path.join(workspace, "results.json"), "w") as f:
        json.dump(result, f, indent=2)
    with open(os.path.join(workspace, "results.md"), "w") as f:
        f.write(format_markdown(result))
