"""A small synthetic 3D segmentation dataset in nnU-Net v2 raw format, made on the spot (numpy + SimpleITK).

Each case holds two structures on a noisy background:

* label 1, a spindle: an elliptic cross-section whose radii grow and shrink along z (``sin`` profile) around an
  axis that drifts in-plane, so its area changes from slice to slice;
* label 2, a smaller ellipsoid elsewhere in the volume, darker than the background where the spindle is brighter.

Positions, sizes and intensities are random per case and fully determined by the seed. Images are written as float32
``CASE_0000.nii.gz``, labels as uint8 ``CASE.nii.gz``; the spacing (anisotropic along z by default) is set in the
header. Training cases go to ``imagesTr``/``labelsTr``; held-out test cases to ``imagesTs``/``labelsTs``, which
nnU-Net's planning and training never read.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Dict, List, Sequence, Tuple

import numpy as np
import SimpleITK as sitk

LABELS: Dict[str, int] = {"background": 0, "spindle": 1, "blob": 2}
FILE_ENDING = ".nii.gz"


@dataclass(frozen=True)
class SyntheticSpec:
    """What the generated volumes look like.

    shape: array shape (z, y, x); spacing: voxel size in mm as (z, y, x); noise: std of the Gaussian noise in units
    of the background-to-spindle contrast."""
    shape: Tuple[int, int, int] = (28, 56, 56)
    spacing: Tuple[float, float, float] = (2.0, 1.0, 1.0)
    noise: float = 0.35


@dataclass
class SyntheticDataset:
    """Paths of a written dataset."""
    dataset_dir: str
    dataset_name: str
    train_ids: List[str] = field(default_factory=list)
    test_ids: List[str] = field(default_factory=list)

    @property
    def images_tr(self) -> str:
        return os.path.join(self.dataset_dir, "imagesTr")

    @property
    def labels_tr(self) -> str:
        return os.path.join(self.dataset_dir, "labelsTr")

    @property
    def images_ts(self) -> str:
        return os.path.join(self.dataset_dir, "imagesTs")

    @property
    def labels_ts(self) -> str:
        return os.path.join(self.dataset_dir, "labelsTs")


def _grid(shape: Sequence[int]) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Voxel index grids (z, y, x) as float arrays."""
    return np.meshgrid(*(np.arange(n, dtype=np.float64) for n in shape), indexing="ij")


def spindle_mask(shape: Sequence[int], rng: np.random.Generator) -> np.ndarray:
    """A spindle along z: elliptic slices whose radii follow ``sin`` over its z-extent, on a drifting axis."""
    nz, ny, nx = shape
    length = rng.uniform(0.55, 0.85) * nz
    z0 = rng.uniform(0.05 * nz, nz - length - 0.05 * nz)
    ry_max = rng.uniform(0.12, 0.2) * ny
    rx_max = rng.uniform(0.12, 0.2) * nx
    margin_y, margin_x = ry_max + 0.1 * ny, rx_max + 0.1 * nx
    cy0, cy1 = rng.uniform(margin_y, ny - margin_y, size=2)
    cx0, cx1 = rng.uniform(margin_x, nx - margin_x, size=2)
    z, y, x = _grid(shape)
    t = (z - z0) / length  # 0..1 along the spindle
    inside_z = (t >= 0) & (t <= 1)
    profile = np.sin(np.pi * np.clip(t, 0.0, 1.0)) ** 0.8
    cy, cx = cy0 + (cy1 - cy0) * t, cx0 + (cx1 - cx0) * t
    ry, rx = np.maximum(ry_max * profile, 1e-3), np.maximum(rx_max * profile, 1e-3)
    return inside_z & (((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1.0)


def ellipsoid_mask(shape: Sequence[int], rng: np.random.Generator, avoid: np.ndarray,
                   tries: int = 50) -> np.ndarray:
    """A small ellipsoid that overlaps ``avoid`` by at most 10% of its volume (best of ``tries`` random draws)."""
    nz, ny, nx = shape
    z, y, x = _grid(shape)
    best, best_overlap = None, np.inf
    for _ in range(tries):
        radii = np.array([rng.uniform(0.14, 0.2) * nz, rng.uniform(0.13, 0.18) * ny, rng.uniform(0.13, 0.18) * nx])
        centre = [rng.uniform(r + 1, n - r - 1) for r, n in zip(radii, shape)]
        mask = ((z - centre[0]) / radii[0]) ** 2 + ((y - centre[1]) / radii[1]) ** 2 + \
               ((x - centre[2]) / radii[2]) ** 2 <= 1.0
        if not mask.any():
            continue
        overlap = np.logical_and(mask, avoid).sum() / mask.sum()
        if overlap < best_overlap:
            best, best_overlap = mask, overlap
        if overlap <= 0.0:
            break
    if best is None:
        raise RuntimeError(f"could not place a label-2 structure in a volume of shape {tuple(shape)}")
    return best


def make_case(rng: np.random.Generator, spec: SyntheticSpec = SyntheticSpec()) -> Tuple[np.ndarray, np.ndarray]:
    """One (image, label) pair as arrays of shape ``spec.shape``: float32 intensities and uint8 labels {0, 1, 2}."""
    shape = tuple(int(s) for s in spec.shape)
    if min(shape) < 8:
        raise ValueError(f"shape {shape} is too small: every axis needs at least 8 voxels")
    label = np.zeros(shape, dtype=np.uint8)
    spindle = spindle_mask(shape, rng)
    label[spindle] = LABELS["spindle"]
    blob = ellipsoid_mask(shape, rng, spindle)
    label[blob] = LABELS["blob"]
    z, y, x = _grid(shape)
    # smooth background bias so intensity alone is not a perfect classifier
    bias = 0.15 * np.sin(2 * np.pi * (y / shape[1] + rng.uniform())) * np.cos(2 * np.pi * (x / shape[2] +
                                                                                            rng.uniform()))
    means = {0: 0.0, 1: rng.uniform(0.9, 1.1), 2: rng.uniform(-0.9, -0.7)}  # spindle bright, blob dark
    image = bias + np.choose(label, [means[0], means[1], means[2]])
    image = image + rng.normal(0.0, spec.noise, size=shape)
    scale, offset = rng.uniform(80, 120), rng.uniform(50, 150)  # arbitrary scanner-like units
    return (image * scale + offset).astype(np.float32), label


def _write(array: np.ndarray, spacing_zyx: Sequence[float], path: str) -> None:
    """Write an array (z, y, x) with spacing (z, y, x) as NIfTI (SimpleITK takes spacing as x, y, z)."""
    img = sitk.GetImageFromArray(array)
    img.SetSpacing(tuple(float(s) for s in reversed(tuple(spacing_zyx))))
    sitk.WriteImage(img, path, useCompression=True)


def case_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of case ``index``: independent of how many other cases are made."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))


def dataset_json(n_train: int, name: str) -> dict:
    """nnU-Net v2 ``dataset.json`` for the synthetic data."""
    return {"channel_names": {"0": "synthetic"}, "labels": dict(LABELS), "numTraining": int(n_train),
            "file_ending": FILE_ENDING, "name": name,
            "description": "synthetic spindles (label 1) and ellipsoids (label 2) made by nnunet_msa"}


def write_synthetic_dataset(nnunet_raw: str, dataset_id: int, n_train: int, n_test: int, seed: int = 0,
                            spec: SyntheticSpec = SyntheticSpec(), name: str = "MSA2Demo") -> SyntheticDataset:
    """Write ``DatasetXXX_name`` under ``nnunet_raw`` with ``n_train`` training and ``n_test`` held-out cases."""
    if n_train < 1:
        raise ValueError("n_train must be at least 1")
    dataset_name = f"Dataset{int(dataset_id):03d}_{name}"
    ds = SyntheticDataset(os.path.join(nnunet_raw, dataset_name), dataset_name)
    for folder in (ds.images_tr, ds.labels_tr, ds.images_ts, ds.labels_ts):
        os.makedirs(folder, exist_ok=True)
    for index in range(n_train + n_test):
        image, label = make_case(case_rng(seed, index), spec)
        is_train = index < n_train
        case = f"{'train' if is_train else 'test'}_{index:03d}"
        _write(image, spec.spacing, os.path.join(ds.images_tr if is_train else ds.images_ts,
                                                  f"{case}_0000{FILE_ENDING}"))
        _write(label, spec.spacing, os.path.join(ds.labels_tr if is_train else ds.labels_ts, f"{case}{FILE_ENDING}"))
        (ds.train_ids if is_train else ds.test_ids).append(case)
    with open(os.path.join(ds.dataset_dir, "dataset.json"), "w") as f:
        json.dump(dataset_json(n_train, name), f, indent=2)
    return ds


def cross_section_areas(label: np.ndarray, value: int) -> np.ndarray:
    """Voxel count of ``value`` in every z-slice of a (z, y, x) label map."""
    return (label == value).reshape(label.shape[0], -1).sum(axis=1)

