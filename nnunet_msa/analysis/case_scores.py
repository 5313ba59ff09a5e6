"""Per-case Dice of a folder of segmentations against the references, computed by nnU-Net's own evaluation
(``nnunetv2.evaluation.evaluate_predictions.compute_metrics``: labels or regions as the dataset defines them, the
ignore label's voxels left out), and what ``nnunet-msa compare`` reads from a model folder: the validation
segmentations of each fold and the epoch times of its training logs.
"""
from __future__ import annotations

import glob
import json
import os
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np


class CompareError(ValueError):
    """Input that ``compare`` cannot use; the message names the problem and the fix."""


@dataclass
class LabelDefinition:
    """The foreground labels or regions of a dataset.json, the ignore label, and the file ending."""

    keys: List[str]                      # nnU-Net's keys: "1", "2" or "(1, 2)" for a region
    labels_or_regions: list              # what compute_metrics takes
    names: Dict[str, str]                # key -> dataset.json name
    ignore_label: Optional[int]
    file_ending: str

    def signature(self) -> Tuple:
        return tuple(self.keys), self.ignore_label


def label_definition(dataset_json: dict) -> LabelDefinition:
    """The definition nnU-Net's ``LabelManager`` gives for this dataset.json."""
    from nnunetv2.evaluation.evaluate_predictions import label_or_region_to_key
    from nnunetv2.utilities.label_handling.label_handling import LabelManager

    lm = LabelManager(dataset_json["labels"], dataset_json.get("regions_class_order"))
    items = lm.foreground_regions if lm.has_regions else lm.foreground_labels
    names = {}
    for name, value in dataset_json["labels"].items():
        if name in ("background", "ignore"):
            continue
        key = label_or_region_to_key(tuple(value) if isinstance(value, (list, tuple)) else value)
        names[key] = name
    keys = [label_or_region_to_key(r) for r in items]
    return LabelDefinition(keys, list(items), {k: names.get(k, k) for k in keys}, lm.ignore_label,
                           dataset_json["file_ending"])


@dataclass
class CaseScores:
    """Dice per case (rows, ``cases`` order) and label/region (columns, ``keys`` order); NaN where a label is absent
    from both reference and prediction (nnU-Net's convention)."""

    cases: List[str]
    keys: List[str]
    dice: np.ndarray
    fold_of: Dict[str, str] = field(default_factory=dict)

    def mean_foreground(self) -> np.ndarray:
        """The mean over labels of each case (labels absent from both left out)."""
        with np.errstate(all="ignore"):
            return np.nanmean(self.dice, axis=1) if self.dice.size else np.zeros(0)


def score_cases(pairs: Sequence[Tuple[str, str, str]], definition: LabelDefinition, reader_writer) -> np.ndarray:
    """(case, prediction file, reference file) -> Dice (cases, labels), by nnU-Net's ``compute_metrics``."""
    from nnunetv2.evaluation.evaluate_predictions import compute_metrics

    out = np.full((len(pairs), len(definition.keys)), np.nan)
    for i, (_, pred, ref) in enumerate(pairs):
        metrics = compute_metrics(ref, pred, reader_writer, definition.labels_or_regions,
                                  definition.ignore_label)["metrics"]
        for j, r in enumerate(definition.labels_or_regions):
            out[i, j] = metrics[r]["Dice"]
    return out


def files_by_case(folder: str, file_ending: str) -> Dict[str, str]:
    """``{case: path}`` of the segmentations in ``folder``."""
    return {os.path.basename(p)[: -len(file_ending)]: p
            for p in sorted(glob.glob(os.path.join(folder, f"*{file_ending}")))}


@dataclass
class ModelFolder:
    """``nnUNet_results/DATASET/TRAINER__PLANS__CONFIGURATION`` of one trainer."""

    path: str
    trainer: str
    plans: str
    configuration: str

    @property
    def dataset_json(self) -> dict:
        with open(os.path.join(self.path, "dataset.json")) as f:
            return json.load(f)

    @property
    def plans_json(self) -> dict:
        with open(os.path.join(self.path, "plans.json")) as f:
            return json.load(f)

    def validation(self, fold: int, file_ending: str) -> Dict[str, str]:
        """The validation segmentations of a fold; an error naming the fix when the fold has none."""
        folder = os.path.join(self.path, f"fold_{fold}")
        if not os.path.isdir(folder):
            raise CompareError(f"{self.trainer}: fold {fold} is not trained ({folder} does not exist). Train it: "
                               f"nnUNetv2_train DATASET {self.configuration} {fold} -tr {self.trainer} -p {self.plans}, "
                               f"or compare other folds (-f).")
        files = files_by_case(os.path.join(folder, "validation"), file_ending)
        if not files:
            done = os.path.isfile(os.path.join(folder, "checkpoint_final.pth"))
            fix = (f"nnUNetv2_train DATASET {self.configuration} {fold} -tr {self.trainer} -p {self.plans} --val"
                   if done else f"finish its training (nnUNetv2_train DATASET {self.configuration} {fold} -tr "
                                f"{self.trainer} -p {self.plans} --c)")
            raise CompareError(f"{self.trainer}: fold {fold} has no validation output in {folder}/validation. "
                               f"Fix: {fix}.")
        return files

    def epoch_times(self, folds: Sequence[int]) -> List[float]:
        """The ``Epoch time: X s`` lines of the folds' training logs."""
        times: List[float] = []
        for fold in folds:
            for log in sorted(glob.glob(os.path.join(self.path, f"fold_{fold}", "training_log_*.txt"))):
                with open(log, errors="replace") as f:
                    times += [float(t) for t in re.findall(r"Epoch time: ([0-9.]+) s", f.read())]
        return times

    def hardware(self, folds: Sequence[int]) -> List[str]:
        """What nnU-Net's ``debug.json`` of each fold says about where it ran (device, GPU, host)."""
        seen = []
        for fold in folds:
            path = os.path.join(self.path, f"fold_{fold}", "debug.json")
            if not os.path.isfile(path):
                continue
            with open(path) as f:
                debug = json.load(f)
            parts = [str(debug.get(k)) for k in ("device", "gpu_name", "hostname") if debug.get(k)]
            text = ", ".join(parts) or "unknown"
            if text not in seen:
                seen.append(text)
        return seen


def find_model_folder(results: str, dataset: str, trainer: str, plans: str, configuration: str) -> ModelFolder:
    """The model folder of ``trainer``; an error listing the trained ones when it does not exist."""
    path = os.path.join(results, dataset, f"{trainer}__{plans}__{configuration}")
    if not os.path.isdir(path):
        there = sorted(os.path.basename(p) for p in glob.glob(os.path.join(results, dataset, "*__*__*")))
        raise CompareError(f"no model folder {path}. Trained there: {', '.join(there) or 'nothing'}. Check -tr, "
                           f"-p and -c (or nnUNet_results).")
    return ModelFolder(path, trainer, plans, configuration)
