"""Dice per label between predicted and reference label maps (any format nnU-Net reads)."""
from __future__ import annotations

import os
from typing import Dict, List, Sequence

import numpy as np
import SimpleITK as sitk


def read_labels(path: str) -> np.ndarray:
    """A label map as an int array (SimpleITK reads NIfTI and PNG)."""
    return sitk.GetArrayFromImage(sitk.ReadImage(path)).astype(np.int64)


def dice_per_label(pred: np.ndarray, ref: np.ndarray, labels: Sequence[int]) -> Dict[int, float]:
    """Dice of each label; NaN where the label is absent from both."""
    if pred.shape != ref.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from reference shape {ref.shape}")
    out = {}
    for lab in labels:
        p, r = pred == lab, ref == lab
        denom = p.sum() + r.sum()
        out[int(lab)] = float(2 * np.logical_and(p, r).sum() / denom) if denom else float("nan")
    return out


def folder_dice(pred_dir: str, ref_dir: str, labels: Sequence[int], file_ending: str) -> Dict[int, List[float]]:
    """Dice per label for every reference case that has a prediction; raises if a prediction is missing."""
    result: Dict[int, List[float]] = {int(l): [] for l in labels}
    refs = sorted(f for f in os.listdir(ref_dir) if f.endswith(file_ending))
    for name in refs:
        pred_path = os.path.join(pred_dir, name)
        if not os.path.isfile(pred_path):
            raise FileNotFoundError(f"no prediction {pred_path} for reference {name}")
        for lab, d in dice_per_label(read_labels(pred_path), read_labels(os.path.join(ref_dir, name)),
                                     labels).items():
            result[lab].append(d)
    return result
