"""``nnunet-msa demo``: make a small dataset (synthetic by default, or a subset of an MSD task or of an nnU-Net raw
dataset), then run nnU-Net's real commands in subprocesses: plan and preprocess, train nnU-Net's default trainer and
nnUNetTrainerMSA2 on one budget, predict held-out cases that no training saw, and print a Dice table.

Everything goes into one workspace folder (by default ``~/nnunet_msa_demo``, outside any checkout; ``nnUNet_raw``, ``nnUNet_preprocessed``, ``nnUNet_results``, ``logs``,
``predictions``, ``heldout_labels``, ``results.json``, ``results.md``). nnU-Net's own output goes to ``logs/``.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from nnunet_msa.pipeline.commands import CommandFailed, run_command
from nnunet_msa.pipeline.dice import folder_dice
from nnunet_msa.pipeline.environment import nnunet_env
from nnunet_msa.pipeline.msd import convert_command, converted_dataset_name, msd_cases, msd_view
from nnunet_msa.pipeline.plans_edit import add_inherited_configuration, case_ids, write_split
from nnunet_msa.pipeline.splits import pick_groups
from nnunet_msa.pipeline.synthetic_dataset import SyntheticSpec, write_synthetic_dataset
from nnunet_msa.pipeline.training_log import EpochProgress, epoch_times

TRAINERS = ("nnUNetTrainer_budget", "nnUNetTrainerMSA2_budget")
DEFAULT_WORKSPACE = os.path.join(os.path.expanduser("~"), "nnunet_msa_demo")
MARKER = ".nnunet_msa_demo"
# Defaults sized so that the default run takes about 10 minutes on 2 CPU cores: an MSA2 iteration (batch 2) costs
# about 4.5x a default nnU-Net one, and each nnU-Net command spends ~10-30 s on imports and worker start-up.
DEFAULTS = {"val_iterations": 1, "batch_size": 2, "val_cases": 2}
SOURCE_DEFAULTS = {"synthetic": {"cases": 20, "test_cases": 4, "epochs": 5, "iterations": 14},
                   "msd": {"cases": 20, "test_cases": 4, "epochs": 4, "iterations": 12},
                   "raw": {"cases": 20, "test_cases": 4, "epochs": 4, "iterations": 12}}


class DemoError(RuntimeError):
    """A problem with the demo's inputs that the user can fix (message says how)."""


# ----------------------------------------------------------------------------------------------------------- CLI
def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``demo`` sub-command's flags."""
    src = parser.add_argument_group("data (default: a synthetic dataset generated on the spot)")
    src_x = src.add_mutually_exclusive_group()
    src_x.add_argument("--msd", metavar="PATH", help="an MSD task folder (e.g. Task04_Hippocampus); a subset is "
                                                     "converted with nnUNetv2_convert_MSD_dataset")
    src_x.add_argument("--nnunet-raw-dataset", metavar="PATH", help="an nnU-Net v2 raw dataset folder (imagesTr, "
                                                                    "labelsTr, dataset.json); a subset is used")
    src.add_argument("--cases", type=int, default=None,
                     help="cases for training + validation (default 20)")
    src.add_argument("--test-cases", type=int, default=None,
                     help="held-out cases to predict and score, never trained on (default 4)")
    src.add_argument("--val-cases", type=int, default=DEFAULTS["val_cases"],
                     help="of --cases, how many nnU-Net validates on (split fold 0) instead of training on (default 2)")
    src.add_argument("--shape", default="24,48,48", help="synthetic volume shape z,y,x (default 24,48,48)")
    src.add_argument("--spacing", default="2.0,1.0,1.0", help="synthetic voxel spacing z,y,x in mm (default 2.0,1.0,1.0)")
    src.add_argument("--group-pattern", default=r"^(.*?)(?:_frame\d+)?$",
                     help="regex whose group 1 names the patient of a case; cases of one patient stay on one side "
                          "of the train/held-out split (the default groups ACDC's frames by patient)")
    src.add_argument("--dataset-id", type=int, default=900, help="nnU-Net dataset ID inside the workspace (default 900)")
    src.add_argument("--seed", type=int, default=0, help="seed of the synthetic data and the case selection (default 0)")
    run = parser.add_argument_group("nnU-Net run")
    run.add_argument("--workspace", default=None,
                     help=f"folder for everything (default: {DEFAULT_WORKSPACE}, or {DEFAULT_WORKSPACE}_N if "
                          f"that exists and is not empty)")
    run.add_argument("--overwrite", action="store_true",
                     help="reuse --workspace from an earlier demo, deleting what that demo wrote there")
    run.add_argument("--configuration", default="3d_fullres", choices=("3d_fullres", "2d"),
                     help="nnU-Net configuration to plan and train (default 3d_fullres)")
    run.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"],
                     help="batch size of a configuration inheriting the planned one (default 2; 0: the planned batch size)")
    run.add_argument("--epochs", type=int, default=None,
                     help="epochs of each trainer (default 5 synthetic, 4 --msd/--nnunet-raw-dataset)")
    run.add_argument("--iterations", type=int, default=None,
                     help="training iterations per epoch (default 14 synthetic, 12 --msd/--nnunet-raw-dataset)")
    run.add_argument("--val-iterations", type=int, default=DEFAULTS["val_iterations"],
                     help="validation iterations per epoch (default 1)")
    run.add_argument("--trainers", nargs="+", default=list(TRAINERS), metavar="TRAINER",
                     help="trainers to compare on the same budget (default: %(default)s)")
    run.add_argument("--tta", action="store_true",
                     help="predict the held-out cases with nnU-Net's test-time mirroring (up to 8x the prediction "
                          "time; nnU-Net's own end-of-training validation always mirrors)")
    run.add_argument("--processes", type=int, default=2, help="processes for conversion and preprocessing (default 2)")
    run.add_argument("--verbose", action="store_true", help="also echo nnU-Net's output (always in logs/)")


def run_demo(args: argparse.Namespace) -> int:
    """Run the demo; 0 on success, 1 when an nnU-Net command failed, 2 on bad inputs."""
    progress = Progress()
    try:
        fill_defaults(args)
        workspace = prepare_workspace(args.workspace, args.overwrite)
        progress.say(f"workspace: {workspace}")
        result = run_pipeline(args, workspace, progress)
    except CommandFailed as e:
        progress.fail(e)
        return 1
    except DemoError as e:
        print(f"nnunet-msa demo: {e}", file=sys.stderr, flush=True)
        return 2
    print()
    print(format_table(result))
    print()
    progress.say(f"done in {progress.elapsed():.0f} s; results in {os.path.join(workspace, 'results.json')} and "
                 f"{os.path.join(workspace, 'results.md')}")
    return 0


# ---------------------------------------------------------------------------------------------------- progress
class Progress:
    """Prints steps with the elapsed time since the demo started."""

    def __init__(self) -> None:
        self.start = time.time()
        self.current_log: Optional[str] = None

    def elapsed(self) -> float:
        return time.time() - self.start

    def say(self, message: str) -> None:
        minutes, seconds = divmod(int(self.elapsed()), 60)
        print(f"[{minutes:3d}:{seconds:02d}] {message}", flush=True)

    def step(self, title: str, log_path: Optional[str] = None) -> None:
        self.current_log = log_path
        self.say(title + (f"  (log: {log_path})" if log_path else ""))

    def fail(self, error: CommandFailed) -> None:
        self.say("FAILED")
        print(str(error), file=sys.stderr)
        if self.current_log:
            print(f"full log: {self.current_log}", file=sys.stderr)
        sys.stderr.flush()


# --------------------------------------------------------------------------------------------------- workspace
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


# -------------------------------------------------------------------------------------------------------- data
@dataclass
class DemoData:
    """A dataset ready for nnU-Net inside the workspace plus held-out cases outside its training folders."""
    source: str
    dataset_id: int
    dataset_dir: str
    heldout_images: str
    heldout_labels: str
    labels: Dict[str, int]
    file_ending: str
    train_ids: List[str] = field(default_factory=list)
    val_ids: List[str] = field(default_factory=list)
    test_ids: List[str] = field(default_factory=list)


def parse_triple(text: str, kind: type) -> Tuple:
    """``"24,48,48"`` -> (24, 48, 48) with ``kind`` applied to each entry."""
    parts = [p.strip() for p in text.replace("x", ",").split(",") if p.strip()]
    if len(parts) != 3:
        raise DemoError(f"{text!r} must have three values z,y,x")
    try:
        return tuple(kind(p) for p in parts)
    except ValueError as e:
        raise DemoError(f"{text!r}: {e}") from e


def read_dataset_json(dataset_dir: str) -> dict:
    with open(os.path.join(dataset_dir, "dataset.json")) as f:
        return json.load(f)


def foreground_labels(labels: Dict[str, object]) -> Dict[str, int]:
    """``{name: value}`` of the foreground labels; region-based datasets are refused."""
    out = {}
    for name, value in labels.items():
        if not isinstance(value, int):
            raise DemoError(f"label {name!r} is a region ({value}); the demo scores plain label maps only")
        if value > 0:
            out[name] = value
    if not out:
        raise DemoError("dataset.json has no foreground label")
    return out


def split_validation(ids: Sequence[str], n_val: int, seed: int, group_pattern: str) -> Tuple[List[str], List[str]]:
    """(train, val): ``n_val`` or more validation cases by whole groups, the rest for training."""
    val, train = pick_groups(ids, n_val, seed + 1, group_pattern)
    if not train:
        raise DemoError(f"--val-cases {n_val} leaves no training case out of {len(ids)}; lower it or add --cases")
    return sorted(train), sorted(val)


def prepare_synthetic(args: argparse.Namespace, raw: str) -> DemoData:
    """Generate the synthetic dataset (training + held-out cases)."""
    spec = SyntheticSpec(shape=parse_triple(args.shape, int), spacing=parse_triple(args.spacing, float))
    try:
        ds = write_synthetic_dataset(raw, args.dataset_id, args.cases, args.test_cases, args.seed, spec)
    except ValueError as e:
        raise DemoError(str(e)) from e
    train, val = split_validation(ds.train_ids, args.val_cases, args.seed, args.group_pattern)
    return DemoData("synthetic", args.dataset_id, ds.dataset_dir, ds.images_ts, ds.labels_ts,
                    foreground_labels(read_dataset_json(ds.dataset_dir)["labels"]), ".nii.gz", train, val,
                    ds.test_ids)


def choose_cases(ids: Sequence[str], args: argparse.Namespace) -> Tuple[List[str], List[str]]:
    """(train+val cases, held-out cases) drawn from ``ids`` by whole groups."""
    if args.cases + args.test_cases > len(ids):
        raise DemoError(f"--cases {args.cases} + --test-cases {args.test_cases} exceed the {len(ids)} cases")
    test, rest = pick_groups(ids, args.test_cases, args.seed, args.group_pattern)
    train, _ = pick_groups(rest, args.cases, args.seed + 2, args.group_pattern)
    return sorted(train), sorted(test)


def prepare_msd(args: argparse.Namespace, workspace: str, env: Dict[str, str], progress: Progress) -> DemoData:
    """Link a subset of the MSD task into a task folder of the workspace (held-out images as its imagesTs) and
    convert it with nnU-Net's ``nnUNetv2_convert_MSD_dataset``; copy the held-out labels aside."""
    source = os.path.abspath(args.msd)
    try:
        selected, test = choose_cases(msd_cases(source), args)
        subset = msd_view(source, os.path.join(workspace, "msd_subset"), train=selected, test=test)
    except (FileNotFoundError, ValueError) as e:
        raise DemoError(f"--msd {source}: {e}") from e
    log = os.path.join(workspace, "logs", "convert_MSD_dataset.log")
    progress.step(f"nnUNetv2_convert_MSD_dataset: {len(selected)} cases + {len(test)} held-out of "
                  f"{os.path.basename(subset)}", log)
    run_command(convert_command(subset, args.dataset_id, args.processes), env, log_path=log, echo=args.verbose)
    dataset_dir = os.path.join(env["nnUNet_raw"], converted_dataset_name(subset, args.dataset_id))
    labels_dir = copy_labels(source, "labelsTr", test, ".nii.gz", workspace)
    train, val = split_validation(selected, args.val_cases, args.seed, args.group_pattern)
    return DemoData("msd:" + source, args.dataset_id, dataset_dir, os.path.join(dataset_dir, "imagesTs"),
                    labels_dir, foreground_labels(read_dataset_json(dataset_dir)["labels"]), ".nii.gz", train, val,
                    test)


def copy_labels(source_dir: str, sub: str, cases: Sequence[str], ending: str, workspace: str) -> str:
    """Copy the held-out reference labels to ``workspace/heldout_labels`` (outside nnU-Net's folders)."""
    out = os.path.join(workspace, "heldout_labels")
    os.makedirs(out, exist_ok=True)
    for case in cases:
        shutil.copyfile(os.path.join(source_dir, sub, case + ending), os.path.join(out, case + ending))
    return out


def prepare_raw_dataset(args: argparse.Namespace, workspace: str, raw: str) -> DemoData:
    """Link a subset of an nnU-Net raw dataset into the workspace (held-out images as its imagesTs)."""
    source = os.path.abspath(args.nnunet_raw_dataset)
    if not os.path.isfile(os.path.join(source, "dataset.json")):
        raise DemoError(f"--nnunet-raw-dataset {source} has no dataset.json")
    meta = read_dataset_json(source)
    ending = meta["file_ending"]
    channels = sorted(int(c) for c in meta["channel_names"])
    selected, test = choose_cases(case_ids(source), args)
    name = re.sub(r"^Dataset\d+_", "", os.path.basename(source.rstrip("/"))) or "Raw"
    dataset_dir = os.path.join(raw, f"Dataset{args.dataset_id:03d}_{name}")
    for sub, cases in (("imagesTr", selected), ("imagesTs", test)):
        os.makedirs(os.path.join(dataset_dir, sub))
        for case in cases:
            for ch in channels:
                fname = f"{case}_{ch:04d}{ending}"
                os.symlink(os.path.join(source, "imagesTr", fname), os.path.join(dataset_dir, sub, fname))
    os.makedirs(os.path.join(dataset_dir, "labelsTr"))
    for case in selected:
        os.symlink(os.path.join(source, "labelsTr", case + ending),
                   os.path.join(dataset_dir, "labelsTr", case + ending))
    meta["numTraining"] = len(selected)
    with open(os.path.join(dataset_dir, "dataset.json"), "w") as f:
        json.dump(meta, f, indent=2)
    labels_dir = copy_labels(source, "labelsTr", test, ending, workspace)
    train, val = split_validation(selected, args.val_cases, args.seed, args.group_pattern)
    return DemoData("nnunet_raw:" + source, args.dataset_id, dataset_dir, os.path.join(dataset_dir, "imagesTs"),
                    labels_dir, foreground_labels(meta["labels"]), ending, train, val, test)


def source_kind(args: argparse.Namespace) -> str:
    return "msd" if args.msd else "raw" if args.nnunet_raw_dataset else "synthetic"


def fill_defaults(args: argparse.Namespace) -> None:
    """Per-source defaults for the flags left unset; check the counts."""
    for name, value in SOURCE_DEFAULTS[source_kind(args)].items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.cases < 2 or args.test_cases < 1 or args.val_cases < 1:
        raise DemoError("need --cases >= 2, --test-cases >= 1 and --val-cases >= 1")
    if min(args.epochs, args.iterations, args.val_iterations) < 1:
        raise DemoError("--epochs, --iterations and --val-iterations must be at least 1")


def prepare_data(args: argparse.Namespace, workspace: str, env: Dict[str, str], progress: Progress) -> DemoData:
    """The dataset for the chosen source, with train/val/held-out cases decided."""
    kind = source_kind(args)
    if kind == "msd":
        return prepare_msd(args, workspace, env, progress)
    if kind == "raw":
        progress.step(f"linking a subset of {args.nnunet_raw_dataset} into the workspace")
        return prepare_raw_dataset(args, workspace, env["nnUNet_raw"])
    progress.step(f"generating a synthetic dataset: {args.cases} training + {args.test_cases} held-out cases of "
                  f"shape {args.shape} (z,y,x), spacing {args.spacing} mm, seed {args.seed}")
    return prepare_synthetic(args, env["nnUNet_raw"])


# ------------------------------------------------------------------------------------------------- nnU-Net steps
def preprocessed_dir(env: Dict[str, str], data: DemoData) -> str:
    return os.path.join(env["nnUNet_preprocessed"], os.path.basename(data.dataset_dir))


def plan_and_preprocess(args: argparse.Namespace, data: DemoData, env: Dict[str, str], workspace: str,
                        progress: Progress) -> float:
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
                         progress: Progress) -> Tuple[str, int]:
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
          args: argparse.Namespace, progress: Progress) -> float:
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
            args: argparse.Namespace, progress: Progress) -> Tuple[str, float]:
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


# ------------------------------------------------------------------------------------------------------- pipeline
def run_pipeline(args: argparse.Namespace, workspace: str, progress: Progress) -> dict:
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
                args: argparse.Namespace, progress: Progress) -> dict:
    """Train, predict the held-out cases and score one trainer."""
    train_seconds = train(trainer, configuration, data, env, workspace, args, progress)
    pred_dir, predict_seconds = predict(trainer, configuration, data, env, workspace, args, progress)
    scores = score(pred_dir, data)
    progress.say(f"  Dice on held-out cases: " + ", ".join(f"{k} {_fmt(v)}" for k, v in scores["dice"].items()))
    train_log = os.path.join(workspace, "logs", f"train_{trainer}.log")
    epochs = epoch_times(train_log)
    return {**scores, "train_seconds": train_seconds, "predict_seconds": predict_seconds,
            "epoch_seconds": epochs, "seconds_per_iteration": (sum(epochs) / (len(epochs) * args.iterations)
                                                               if epochs else None),
            "predictions": pred_dir, "train_log": train_log,
            "predict_log": os.path.join(workspace, "logs", f"predict_{trainer}.log")}


# -------------------------------------------------------------------------------------------------------- output
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


def format_table(result: dict) -> str:
    """Plain-text table with a line describing the run."""
    header, rows = table_rows(result)
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    line = lambda cells: "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)  # noqa: E731
                                   for i, (c, w) in enumerate(zip(cells, widths)))
    b = result["budget"]
    title = (f"{result['dataset']} ({result['source']}), {result['configuration']} batch {result['batch_size']}, "
             f"{b['epochs']} epochs x {b['iterations_per_epoch']} iterations; Dice on "
             f"{len(result['test_cases'])} held-out cases")
    return "\n".join([title, line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


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
