"""``nnunet-msa compare`` on a five-fold cross-validation made by the real commands: a copy of the five smallest
Task04_Hippocampus cases (Dataset505), ``nnUNetv2_plan_and_preprocess -c 2d``, nnU-Net's own five-fold split (one
validation case per fold), ``nnUNetv2_train`` of nnU-Net's trainer and of MSA2 on every fold (one iteration each), then
``compare`` over all five folds without ``-f``."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import e2e_helpers as h
import pipeline_runs as pr

pytestmark = pytest.mark.e2e

DATASET_ID = 505
TRAINERS = (pr.NNUNET_BUDGET, pr.MSA2_BUDGET)
FOLDS = range(5)
BUDGETS = {(t, "2d"): (1, 1, 1) for t in TRAINERS}


@pytest.fixture(scope="module")
def five_folds(hippocampus, e2e_workspace) -> h.Dataset:
    import SimpleITK as sitk

    ws, src = e2e_workspace, hippocampus
    sizes = {}
    for f in (src.raw_dir / "imagesTr").glob("*_0000.nii.gz"):
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(f))
        reader.ReadImageInformation()
        sizes[f.name[: -len("_0000.nii.gz")]] = int(np.prod(reader.GetSize()))
    cases = sorted(sizes, key=lambda c: (sizes[c], c))[:5]
    raw = ws.raw / f"Dataset{DATASET_ID}_HippocampusFive"
    for sub in ("imagesTr", "labelsTr"):
        (raw / sub).mkdir(parents=True, exist_ok=True)
    for case in cases:
        (raw / "imagesTr" / f"{case}_0000.nii.gz").symlink_to(src.image_files(case)[0])
        (raw / "labelsTr" / f"{case}.nii.gz").symlink_to(src.label_file(case))
    meta = json.loads((src.raw_dir / "dataset.json").read_text())
    meta.update(numTraining=len(cases), name="HippocampusFive", description="five Task04_Hippocampus cases")
    (raw / "dataset.json").write_text(json.dumps(meta, indent=2))
    h.run(["nnUNetv2_plan_and_preprocess", "-d", str(DATASET_ID), "-c", "2d", "-np", "1", "-npfp", "1"], ws.env,
          ws.logs / "five_plan_and_preprocess.log", label=f"nnUNetv2_plan_and_preprocess -d {DATASET_ID} -c 2d")
    ds = h.Dataset(dataset_id=DATASET_ID, name=raw.name, raw_dir=raw, preprocessed_dir=ws.preprocessed / raw.name,
                   labels={0, 1, 2}, file_ending=".nii.gz", num_channels=1)
    ds.train_ids = cases
    pr.train(ws, ds, [(t, "2d", f) for t in TRAINERS for f in FOLDS], budgets=BUDGETS)
    return ds


def test_compare_over_nnunets_five_folds(five_folds, e2e_workspace, tmp_path) -> None:
    ws, ds = e2e_workspace, five_folds
    out = tmp_path / "five.json"
    ran = h.run(["nnunet-msa", "compare", "-d", str(ds.dataset_id), "-c", "2d", "-tr", *TRAINERS, "--json", str(out)],
                ws.env, ws.logs / "compare_five.log", label="nnunet-msa compare (five folds)")
    result = json.loads(out.read_text())
    assert result["folds"] == list(FOLDS) and sorted(result["per_case"]) == sorted(ds.train_ids)
    assert result["n_cases"] + len(result["left_out_cases"]) == 5
    splits = json.loads((ds.preprocessed_dir / "splits_final.json").read_text())
    assert [len(s["val"]) for s in splits] == [1] * 5
    assert result["cost"]["epochs_a"] == 5 and result["cost"]["epochs_b"] == 5
    assert ran.wall < 60, f"compare of five folds took {ran.wall:.0f} s"
