"""``nnunet-msa demo``: the synthetic generator (fast) and one end-to-end run of the real nnU-Net commands on a tiny
budget (slow, marked e2e)."""
from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_msa.pipeline.synthetic_dataset import (LABELS, SyntheticSpec, case_rng, cross_section_areas, make_case,
                                                   write_synthetic_dataset)


# ------------------------------------------------------------------------------------------------ generator
@pytest.mark.parametrize("index", range(6))
def test_case_has_both_labels_and_a_spindle_whose_area_varies_along_z(index: int) -> None:
    spec = SyntheticSpec(shape=(24, 48, 48))
    image, label = make_case(case_rng(3, index), spec)
    assert image.shape == label.shape == (24, 48, 48)
    assert image.dtype == np.float32 and label.dtype == np.uint8
    assert set(np.unique(label)) == {0, 1, 2}
    areas = cross_section_areas(label, 1)
    present = areas[areas > 0]
    assert len(present) >= 5, "the spindle spans several slices"
    assert present.max() >= 3 * present.min(), "its cross-section grows and shrinks along z"
    peak = int(np.argmax(areas))
    assert areas[:peak + 1].min() < areas[peak] and areas[peak:].min() < areas[peak], "peak is inside, not at an end"
    # intensity contrast between the labels, above the noise of the background
    bg, l1, l2 = (image[label == v].mean() for v in (0, 1, 2))
    assert l1 > bg > l2
    assert min(l1 - bg, bg - l2) > image[label == 0].std()


def test_generator_is_deterministic_given_a_seed() -> None:
    a = make_case(case_rng(7, 2))
    b = make_case(case_rng(7, 2))
    c = make_case(case_rng(8, 2))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])


def test_written_dataset_is_nnunet_raw_format(tmp_path) -> None:
    spec = SyntheticSpec(shape=(16, 32, 40), spacing=(3.0, 0.8, 0.7))
    ds = write_synthetic_dataset(str(tmp_path), 123, n_train=3, n_test=2, seed=1, spec=spec)
    assert os.path.basename(ds.dataset_dir) == "Dataset123_MSA2Demo"
    with open(os.path.join(ds.dataset_dir, "dataset.json")) as f:
        meta = json.load(f)
    assert meta["labels"] == LABELS and meta["numTraining"] == 3 and meta["file_ending"] == ".nii.gz"
    assert meta["channel_names"] == {"0": "synthetic"}
    assert sorted(os.listdir(ds.images_tr)) == [f"{c}_0000.nii.gz" for c in ds.train_ids]
    assert sorted(os.listdir(ds.labels_tr)) == [f"{c}.nii.gz" for c in ds.train_ids]
    assert sorted(os.listdir(ds.images_ts)) == [f"{c}_0000.nii.gz" for c in ds.test_ids]
    assert sorted(os.listdir(ds.labels_ts)) == [f"{c}.nii.gz" for c in ds.test_ids]
    assert not set(ds.train_ids) & set(ds.test_ids)
    img = sitk.ReadImage(os.path.join(ds.images_tr, f"{ds.train_ids[0]}_0000.nii.gz"))
    assert img.GetSize() == (40, 32, 16)  # SimpleITK reports x, y, z
    assert np.allclose(img.GetSpacing(), (0.7, 0.8, 3.0))
    # the same seed writes the same case, whatever else is in the dataset
    image0, label0 = make_case(case_rng(1, 0), spec)
    assert np.allclose(sitk.GetArrayFromImage(img), image0)
    assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(os.path.join(ds.labels_tr, f"{ds.train_ids[0]}"
                                                                              ".nii.gz"))), label0)


# -------------------------------------------------------------------------------------------------- end to end
def _geometry(path: str) -> tuple:
    img = sitk.ReadImage(path)
    return (img.GetSize(),) + tuple(tuple(np.round(v, 5).tolist()) for v in (img.GetSpacing(), img.GetOrigin(),
                                                                              img.GetDirection()))


@pytest.mark.e2e
def test_demo_runs_the_real_nnunet_commands_for_both_trainers(tmp_path) -> None:
    workspace = tmp_path / "ws"
    cmd = [sys.executable, "-m", "nnunet_msa.cli.main", "demo", "--workspace", str(workspace),
           "--cases", "4", "--test-cases", "2", "--val-cases", "1", "--shape", "16,32,32",
           "--epochs", "1", "--iterations", "1", "--val-iterations", "1", "--batch-size", "2", "--processes", "1"]
    env = dict(os.environ)
    bindir = os.path.dirname(sys.executable)  # the nnUNetv2_* scripts of this interpreter's environment
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"demo failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert "nnUNetTrainerMSA2_budget" in proc.stdout and "mean Dice" in proc.stdout
    # progress while training, read from nnU-Net's own output: one line per epoch and trainer
    progress = re.findall(r"epoch 1/1: train loss -?[0-9.]+, pseudo-Dice [0-9.nan ]+, [0-9.]+ s/epoch, about 0 s left", proc.stdout)
    assert len(progress) == 2, proc.stdout[-3000:]

    with open(workspace / "results.json") as f:
        result = json.load(f)
    assert set(result["trainers"]) == {"nnUNetTrainer_budget", "nnUNetTrainerMSA2_budget"}
    assert (workspace / "results.md").is_file()
    assert result["labels"] == {"spindle": 1, "blob": 2}
    test_cases = result["test_cases"]
    assert len(test_cases) == 2 and not set(test_cases) & set(result["train_cases"] + result["val_cases"])

    images = os.path.join(workspace, "nnUNet_raw", result["dataset"], "imagesTs")
    for trainer, r in result["trainers"].items():
        for name in ("spindle", "blob"):
            d = r["dice"][name]
            assert d is not None and 0.0 <= d <= 1.0, (trainer, name, d)
        assert r["mean_dice"] is None or 0.0 <= r["mean_dice"] <= 1.0
        assert r["train_seconds"] > 0 and r["predict_seconds"] > 0
        assert all(not math.isnan(v) for v in r["epoch_seconds"]) and len(r["epoch_seconds"]) == 1
        for case in test_cases:
            pred = os.path.join(r["predictions"], f"{case}.nii.gz")
            assert os.path.isfile(pred), pred
            assert _geometry(pred) == _geometry(os.path.join(images, f"{case}_0000.nii.gz"))
            values = set(np.unique(sitk.GetArrayFromImage(sitk.ReadImage(pred))))
            assert values <= {0, 1, 2}
