"""A configuration at a coarser in-plane spacing (issue 36): ``python -m nnunet_msa.pipeline.coarser_configuration``
writes into ACDC's plans a configuration that inherits ``2d``, planned by nnU-Net's own planner for 3.125 mm, and
``nnUNetv2_preprocess -c 2d_inplane2x`` preprocesses it at that spacing; nnU-Net's network and ours build from it."""
from __future__ import annotations

import json
import os
import pickle
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from nnunet_msa.pipeline.coarser_configuration import coarser_name, coarser_spacing

import e2e_helpers as h


def test_coarser_spacing_coarsens_the_in_plane_axes_only() -> None:
    assert coarser_spacing([1.5625, 1.5625], 2) == [3.125, 3.125]
    assert coarser_spacing([10.0, 1.5625, 1.5625], 2) == [10.0, 3.125, 3.125]
    assert coarser_spacing([1.0, 1.0, 1.0], 1.5) == [1.5, 1.5, 1.5]
    assert coarser_name("2d", 2.0) == "2d_inplane2x" and coarser_name("3d_fullres", 1.5) == "3d_fullres_inplane1.5x"
    with pytest.raises(ValueError, match="finer"):
        coarser_spacing([1.0, 1.0], 0.5)


@pytest.mark.e2e
def test_acdc_2d_at_twice_the_spacing_is_planned_preprocessed_and_builds(planned, shared_data: Path,
                                                                           tmp_path: Path) -> None:
    from nnunet_msa.pipeline.environment import nnunet_env
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunet_msa.training.network_from_plans import build_msa2_network

    env = nnunet_env(str(tmp_path))
    raw = Path(env["nnUNet_raw"]) / "Dataset027_ACDC"
    # six of ACDC's volumes (three patients) are preprocessed: the plans and fingerprint are the whole dataset's
    source = shared_data / "ACDC"
    cases = sorted(f[: -len(".nii.gz")] for f in os.listdir(source / "labelsTr") if f.endswith(".nii.gz"))[:6]
    for sub in ("imagesTr", "labelsTr"):
        (raw / sub).mkdir(parents=True)
    for case in cases:
        os.symlink(source / "imagesTr" / f"{case}_0000.nii.gz", raw / "imagesTr" / f"{case}_0000.nii.gz")
        os.symlink(source / "labelsTr" / f"{case}.nii.gz", raw / "labelsTr" / f"{case}.nii.gz")
    dataset_json = json.loads((source / "dataset.json").read_text())
    (raw / "dataset.json").write_text(json.dumps({**dataset_json, "numTraining": len(cases)}))
    pre = Path(env["nnUNet_preprocessed"]) / "Dataset027_ACDC"
    pre.mkdir(parents=True)
    for name in ("nnUNetPlans.json", "dataset_fingerprint.json", "dataset.json"):
        shutil.copy(os.path.join(planned["27"], name), pre / name)

    cmd = [sys.executable, "-m", "nnunet_msa.pipeline.coarser_configuration", "27", "-c", "2d",
           "--in-plane-factor", "2"]
    h.run(cmd, env, tmp_path / "coarser.log")
    h.run(cmd, env, tmp_path / "coarser_again.log")  # idempotent: the same entry, not a second one
    plans = json.loads((pre / "nnUNetPlans.json").read_text())
    entry = plans["configurations"]["2d_inplane2x"]
    base = plans["configurations"]["2d"]
    assert entry["inherits_from"] == "2d"
    assert entry["data_identifier"] == "nnUNetPlans_2d_inplane2x"
    assert entry["spacing"] == [2 * s for s in base["spacing"]]
    # nnU-Net's planner at the coarser spacing: a patch of about half the edge, divisible by the network's strides
    strides = np.prod(entry["architecture"]["arch_kwargs"]["strides"], axis=0)
    assert all(p % s == 0 for p, s in zip(entry["patch_size"], strides))
    assert all(b / 2 - 16 <= p <= b / 2 + 16 for p, b in zip(entry["patch_size"], base["patch_size"]))

    h.run(["nnUNetv2_preprocess", "-d", "27", "-c", "2d_inplane2x", "-np", "2"], env, tmp_path / "preprocess.log")
    folder = pre / "nnUNetPlans_2d_inplane2x"
    assert sorted(f[: -len(".pkl")] for f in os.listdir(folder) if f.endswith(".pkl")) == cases
    import blosc2

    with open(folder / f"{cases[0]}.pkl", "rb") as f:
        props = pickle.load(f)
    cropped = np.array(props["shape_after_cropping_and_before_resampling"], dtype=float)
    data = blosc2.open(str(folder / f"{cases[0]}.b2nd"), mode="r").shape  # (channels, z, y, x)
    assert data[1] == cropped[0], "a 2d configuration keeps the slices"
    assert np.all(np.abs(np.array(data[2:]) - cropped[1:] / 2) <= 1), (cropped, data)
    assert [float(v) for v in props["spacing"]] == list(shared_data_spacing(shared_data, cases[0]))

    cm = PlansManager(str(pre / "nnUNetPlans.json")).get_configuration("2d_inplane2x")
    x = torch.zeros(2, 1, *cm.patch_size)
    nnunet = get_network_from_plans(cm.network_arch_class_name, cm.network_arch_init_kwargs,
                                    cm.network_arch_init_kwargs_req_import, 1, 4, deep_supervision=True)
    ours = build_msa2_network(cm, 1, 4)
    with torch.no_grad():
        ours.eval(), nnunet.eval()
        shapes = [tuple(o.shape) for o in ours(x)]
        assert shapes == [tuple(o.shape) for o in nnunet(x)]
    assert shapes[0] == (2, 4, *cm.patch_size)


def shared_data_spacing(shared_data: Path, case: str):
    """The image's own spacing, in nnU-Net's (z, y, x) order."""
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(shared_data / "ACDC" / "imagesTr" / f"{case}_0000.nii.gz"))
    reader.ReadImageInformation()
    return tuple(reversed(reader.GetSpacing()))
