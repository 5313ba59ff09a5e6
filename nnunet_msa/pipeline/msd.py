"""Medical Segmentation Decathlon task folders as input of nnU-Net's converter (``nnUNetv2_convert_MSD_dataset``).

The converter reads ``<dir>/TaskNN_Name`` with ``imagesTr``, ``labelsTr``, ``imagesTs`` and ``dataset.json``. A
*view* is such a folder made of symlinks to a task elsewhere (the shared data is never copied): the whole task with
an empty ``imagesTs``, or a subset of its cases with some of them held out as ``imagesTs``. Used by the demo, the
benchmarks' workspaces and the tests.
"""
from __future__ import annotations

import json
import os
import re
from typing import List, Optional, Sequence

TASK_NAME = re.compile(r"Task\d+_[^_]+")


def msd_cases(task_dir: str) -> List[str]:
    """Case names (without ``.nii.gz``) of an MSD task that have both an image and a label."""
    def names(sub: str) -> set:
        folder = os.path.join(task_dir, sub)
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"{folder} is missing: an MSD task folder has imagesTr, labelsTr and "
                                    f"dataset.json")
        return {f[:-7] for f in os.listdir(folder) if f.endswith(".nii.gz") and not f.startswith((".", "_"))}
    return sorted(names("imagesTr") & names("labelsTr"))


def msd_view(source: str, parent: str, train: Optional[Sequence[str]] = None, test: Sequence[str] = ()) -> str:
    """``parent/<TaskNN_Name>`` linking to the MSD task ``source``; returns its path.

    Without ``train``: imagesTr, labelsTr and dataset.json linked whole, an empty imagesTs. With ``train``: those
    cases' images and labels, the ``test`` cases' images as imagesTs, and a dataset.json listing them."""
    source = os.path.abspath(source)
    task = os.path.basename(source.rstrip("/"))
    if not TASK_NAME.fullmatch(task):
        raise ValueError(f"{source}: the folder must be named TaskNN_Name like MSD's (e.g. Task04_Hippocampus)")
    view = os.path.join(parent, task)
    os.makedirs(os.path.join(view, "imagesTs"), exist_ok=True)
    if train is None:
        for name in ("imagesTr", "labelsTr", "dataset.json"):
            link = os.path.join(view, name)
            if not os.path.lexists(link):
                os.symlink(os.path.join(source, name), link)
        return view
    for sub, cases, src_sub in (("imagesTr", train, "imagesTr"), ("labelsTr", train, "labelsTr"),
                                ("imagesTs", test, "imagesTr")):
        os.makedirs(os.path.join(view, sub), exist_ok=True)
        for case in cases:
            link = os.path.join(view, sub, case + ".nii.gz")
            if not os.path.lexists(link):
                os.symlink(os.path.join(source, src_sub, case + ".nii.gz"), link)
    with open(os.path.join(source, "dataset.json")) as f:
        meta = json.load(f)
    meta["numTraining"], meta["numTest"] = len(train), len(test)
    meta["training"] = [{"image": f"./imagesTr/{c}.nii.gz", "label": f"./labelsTr/{c}.nii.gz"} for c in train]
    meta["test"] = [f"./imagesTs/{c}.nii.gz" for c in test]
    with open(os.path.join(view, "dataset.json"), "w") as f:
        json.dump(meta, f, indent=2)
    return view


def convert_command(view: str, dataset_id: Optional[int] = None, processes: int = 2) -> List[str]:
    """``nnUNetv2_convert_MSD_dataset -i VIEW [-overwrite_id ID] -np N``."""
    args = ["nnUNetv2_convert_MSD_dataset", "-i", view]
    if dataset_id is not None:
        args += ["-overwrite_id", str(dataset_id)]
    return args + ["-np", str(processes)]


def converted_dataset_name(view: str, dataset_id: Optional[int] = None) -> str:
    """``DatasetNNN_Name``: what the converter names the raw dataset it writes."""
    task = os.path.basename(view.rstrip("/"))
    number, name = task[4:].split("_", 1)
    return f"Dataset{int(dataset_id if dataset_id is not None else number):03d}_{name}"
