"""``nnunet-msa explain`` on models trained with the real ``nnUNetv2_train`` (a few iterations) and real cases:
Task04_Hippocampus 2d (with its label) and 3d_fullres (the models of test_e2e_hippocampus), and an ACDC 2d model
trained here on 8 cine-MRI volumes.

Checks: the files exist; one curve point per preprocessed slice (2d) or per sliding-window patch (3d); every π row
sums to 1 over the candidates; the MASAG maps have the raw image's array shape; Spearman's ρ printed per SACM
layer; the model folder is not changed (observation is on only inside the command)."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import pytest

import e2e_helpers as h
from test_e2e_hippocampus import TRAINER, _train

pytestmark = pytest.mark.e2e

ACDC_ID = 503
ACDC_CASES = [f"patient{p:03d}_frame{f:02d}" for p in (3, 4, 5, 6) for f in (1, 2)]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _explain(ws, model_dir: Path, image: Path, label: Optional[Path], out: Path, tag: str) -> Dict:
    """Run the command in a fresh process; return its JSON, stdout and the checkpoint hash before/after."""
    ckpt = model_dir / "fold_0" / "checkpoint_final.pth"
    before = _sha(ckpt)
    args = ["nnunet-msa", "explain", "-m", str(model_dir), "-i", str(image), "-o", str(out), "-f", "0"]
    if label is not None:
        args += ["-l", str(label)]
    ran = h.run(args, ws.env, ws.logs / f"explain_{tag}.log", label=f"nnunet-msa explain ({tag})")
    with open(out / "explain.json") as f:
        result = json.load(f)
    return dict(json=result, output=ran.output, unchanged=_sha(ckpt) == before)


def _check(res: Dict, out: Path, image: Path, with_label: bool, kind: str) -> None:
    import SimpleITK as sitk

    j = res["json"]
    assert res["unchanged"], "explain changed the checkpoint"
    assert (out / "receptive_field.png").stat().st_size > 0
    assert j["overlays"]["files"] and all((out / f).stat().st_size > 0 for f in j["overlays"]["files"])
    assert j["window_kind"] == kind
    n = len(j["windows"])
    if kind == "slice":
        assert n == j["preprocessed_shape"][0], "a 2d curve needs one point per slice"
    else:
        assert n >= 1
    layers = j["sacm_layers"]
    assert layers, "no SACM layer traced"
    for name, v in layers.items():
        pi = np.asarray(v["pi"])
        assert pi.shape == (n, len(v["receptive_fields"])), name
        assert np.all(pi >= 0) and np.allclose(pi.sum(1), 1, atol=1e-4), name
        erf = np.asarray(v["expected_receptive_field"])
        assert erf.shape == (n,) and np.all(erf >= min(v["receptive_fields"]) - 1e-6)
        assert np.all(erf <= max(v["receptive_fields"]) + 1e-6)
        assert name in res["output"]  # the printed table has every layer
        if not with_label:
            assert v["spearman_vs_reference_area"] is None
    for areas in [j["predicted_area_mm2"]] + ([j["reference_area_mm2"]] if with_label else []):
        assert set(areas) == {str(l) for l in j["labels"]} and all(len(a) == n for a in areas.values())
    if with_label:
        assert any(sum(a) > 0 for a in j["reference_area_mm2"].values()), "the reference label has no foreground"
    image_shape = sitk.GetArrayFromImage(sitk.ReadImage(str(image))).shape
    assert tuple(j["overlays"]["image_shape"]) == image_shape
    maps = np.load(out / "masag_maps.npz")
    assert len(maps.files) == len(j["masag_gates"]) >= 1
    for key in maps.files:
        m = maps[key].astype(np.float32)
        assert m.shape == image_shape, (key, m.shape, image_shape)
        assert np.all((m >= -1e-3) & (m <= 1 + 1e-3))
    assert "Spearman's rho" in res["output"]


@pytest.mark.parametrize("config,kind,with_label", [("2d", "slice", True), ("3d_fullres", "patch", False)])
def test_explain_hippocampus(hippocampus, e2e_workspace, tmp_path, config, kind, with_label) -> None:
    ws, ds = e2e_workspace, hippocampus
    model = _train(ds, ws, config)["model_dir"]
    case = ds.val_ids[0]
    image = ds.image_files(case)[0]
    label = ds.raw_dir / "labelsTr" / f"{case}.nii.gz" if with_label else None
    out = tmp_path / "explain"
    _check(_explain(ws, model, image, label, out, f"hippocampus_{config}"), out, image, with_label, kind)


@pytest.fixture(scope="module")
def acdc_model(shared_data, e2e_workspace) -> Dict:
    """8 ACDC volumes (symlinks) planned and preprocessed for 2d, MSA2 trained 1 iteration (batch 2), without
    nnU-Net's end-of-training validation (explain is the subject)."""
    from nnunet_msa.pipeline.plans_edit import add_inherited_configuration, write_split

    ws = e2e_workspace
    src = shared_data / "ACDC"
    raw = ws.raw / f"Dataset{ACDC_ID}_ACDCsubset"
    (raw / "imagesTr").mkdir(parents=True, exist_ok=True)
    (raw / "labelsTr").mkdir(exist_ok=True)
    for c in ACDC_CASES:
        for sub, name in (("imagesTr", f"{c}_0000.nii.gz"), ("labelsTr", f"{c}.nii.gz")):
            assert (src / sub / name).is_file(), f"missing {src / sub / name}"
            if not (raw / sub / name).exists():
                os.symlink(src / sub / name, raw / sub / name)
    meta = json.loads((src / "dataset.json").read_text())
    meta["numTraining"] = len(ACDC_CASES)
    (raw / "dataset.json").write_text(json.dumps(meta, indent=1))
    h.run(["nnUNetv2_plan_and_preprocess", "-d", str(ACDC_ID), "-c", "2d", "-np", "1", "-npfp", "1"], ws.env,
          ws.logs / "acdc_plan_and_preprocess.log", label="nnUNetv2_plan_and_preprocess ACDC (8 volumes) -c 2d")
    pre = ws.preprocessed / raw.name
    config = add_inherited_configuration(str(pre), "2d", "2d_bs2", 2)
    write_split(str(pre), ACDC_CASES[:7], ACDC_CASES[7:])
    h.run(["nnUNetv2_train", str(ACDC_ID), config, "0", "-tr", TRAINER, "-device", "cpu"],
          h.with_budget(ws.env, 1, 1, 1, validation="off"), ws.logs / "acdc_train.log",
          label=f"nnUNetv2_train ACDC {config}")
    return dict(model=ws.results / raw.name / f"{TRAINER}__nnUNetPlans__{config}", raw=raw, case=ACDC_CASES[7])


def test_explain_acdc_2d(acdc_model, e2e_workspace, tmp_path) -> None:
    raw, case = acdc_model["raw"], acdc_model["case"]
    image, label = raw / "imagesTr" / f"{case}_0000.nii.gz", raw / "labelsTr" / f"{case}.nii.gz"
    out = tmp_path / "explain"
    _check(_explain(e2e_workspace, acdc_model["model"], image, label, out, "acdc_2d"), out, image, True, "slice")


def test_explain_rejects_a_wrong_channel_count(hippocampus, e2e_workspace, tmp_path) -> None:
    """Two image files for the 1-channel hippocampus model: a clear error, no output."""
    ws, ds = e2e_workspace, hippocampus
    model = _train(ds, ws, "2d")["model_dir"]
    image = ds.image_files(ds.val_ids[0])[0]
    ran = h.run(["nnunet-msa", "explain", "-m", str(model), "-i", str(image), str(image), "-o",
                 str(tmp_path / "out")], ws.env, ws.logs / "explain_wrong_channels.log", check=False,
                label="nnunet-msa explain with 2 files for 1 channel")
    assert ran.returncode != 0 and "takes 1 channel(s)" in ran.output and "one file per channel" in ran.output
    assert not (tmp_path / "out" / "explain.json").exists()
