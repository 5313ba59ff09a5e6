"""The demo's data: a synthetic dataset, or a subset of an MSD task or of an nnU-Net raw dataset, linked into the
workspace with held-out cases (imagesTs and their labels outside nnU-Net's folders) and the train/validation split;
the per-source defaults of the demo's flags. ``args`` is the demo's parsed flags (``nnunet-msa demo --help``)."""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from typing import Dict, List, Sequence, Tuple

from nnunet_msa.pipeline.commands import run_command
from nnunet_msa.pipeline.msd import convert_command, converted_dataset_name, msd_cases, msd_view
from nnunet_msa.pipeline.plans_edit import case_ids
from nnunet_msa.pipeline.splits import pick_groups
from nnunet_msa.pipeline.synthetic_dataset import SyntheticSpec, write_synthetic_dataset

# Defaults sized so that the default run takes about 10 minutes on 2 CPU cores: an MSA2 iteration (batch 2) costs
# about 4.5x a default nnU-Net one, and each nnU-Net command spends ~10-30 s on imports and worker start-up.
DEFAULTS = {"val_iterations": 1, "batch_size": 2, "val_cases": 2}
SOURCE_DEFAULTS = {"synthetic": {"cases": 20, "test_cases": 4, "epochs": 5, "iterations": 14},
                   "msd": {"cases": 20, "test_cases": 4, "epochs": 4, "iterations": 12},
                   "raw": {"cases": 20, "test_cases": 4, "epochs": 4, "iterations": 12}}


class DemoError(RuntimeError):
    """A problem with the demo's inputs that the user can fix (message says how)."""


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


def prepare_msd(args: argparse.Namespace, workspace: str, env: Dict[str, str], progress) -> DemoData:
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


def prepare_data(args: argparse.Namespace, workspace: str, env: Dict[str, str], progress) -> DemoData:
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
