"""End to end on two more shared datasets with nnU-Net's real commands (configuration 2d):

- ISBI2012_EM: 2D PNG images (nnU-Net's NaturalImage2DIO), one channel, labels {0, 1};
- BraTS2013_examples: NIfTI with two input channels (FLAIR, T1c), labels 0-4.

Each goes through ``nnUNetv2_plan_and_preprocess``, one training iteration of ``nnUNetTrainerMSA2_budget`` (with
nnU-Net's end-of-training validation on one case) and ``nnUNetv2_predict`` on cases no training saw.

To fit the time budget on 2 CPU cores the workspace holds cropped copies, made by the fixtures (the shared folder is
never written): ISBI images 128×128 (centre crops), BraTS volumes 8 slices × 96 × 96 around the tumour. Measured on
2 shared cores, one MSA2 forward pass of the planned full-size patch costs ~9 s for ISBI (512×512, 8 stages) and
~2 s for BraTS (256×256), so nnU-Net's end-of-training validation of a single full BraTS volume (155 slices × 4
mirrored passes) alone would take ~20 minutes. Crops keep what these tests are about: the PNG reader/writer, the
2-channel input, the NIfTI geometry (a crop has its own origin)."""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Dict

import pytest

import e2e_helpers as h

pytestmark = pytest.mark.e2e

TRAINER = "nnUNetTrainerMSA2_budget"
BATCH = 2


def _prepare(ws, dataset_id: int, name: str, make_raw, n_train: int, n_val: int, n_predict: int) -> h.Dataset:
    """Make the raw dataset, plan and preprocess 2d, add a small-batch configuration and a split, train one
    iteration, predict ``n_predict`` unseen cases. Returns the dataset with ``.runs`` (command results)."""
    from nnunet_msa.pipeline.plans_edit import add_inherited_configuration, write_split

    raw = ws.raw / f"Dataset{dataset_id:03d}_{name}"
    cases = make_raw(raw)
    assert len(cases) >= n_train + n_val + n_predict
    runs = {}
    runs["plan"] = h.run(["nnUNetv2_plan_and_preprocess", "-d", str(dataset_id), "-c", "2d", "-np", "1", "-npfp", "1"],
                         ws.env, ws.logs / f"{name}_plan_and_preprocess.log",
                         label=f"nnUNetv2_plan_and_preprocess {name} -c 2d")
    ds = h.dataset_from_raw(dataset_id, raw, ws.preprocessed)
    ds.configs["2d"] = add_inherited_configuration(str(ds.preprocessed_dir), "2d", "2d_bs2", BATCH)
    ds.val_ids = cases[:n_val]
    ds.train_ids = cases[n_val:n_val + n_train]
    ds.predict_ids = cases[n_val + n_train:n_val + n_train + n_predict]
    write_split(str(ds.preprocessed_dir), ds.train_ids, ds.val_ids)

    runs["train"] = h.run(["nnUNetv2_train", str(dataset_id), ds.configs["2d"], "0", "-tr", TRAINER, "-device",
                           "cpu"], h.with_budget(ws.env, 1, 1, 1), ws.logs / f"{name}_train.log",
                          label=f"nnUNetv2_train {name} 2d_bs2 -tr {TRAINER}")
    inputs = h.link_inputs(ds, ds.predict_ids, ws.root / "predict_in" / name)
    out = ws.root / "predict_out" / name
    runs["predict"] = h.run(["nnUNetv2_predict", "-i", str(inputs), "-o", str(out), "-d", str(dataset_id), "-c",
                             ds.configs["2d"], "-f", "0", "-tr", TRAINER, "-device", "cpu", *h.SEQUENTIAL_PREDICT,
                             "--disable_tta"], ws.env, ws.logs / f"{name}_predict.log",
                            label=f"nnUNetv2_predict {name} 2d_bs2")
    ds.runs = runs
    ds.model_dir = ws.results / ds.name / f"{TRAINER}__nnUNetPlans__{ds.configs['2d']}"
    ds.predictions = out
    return ds


def _isbi(shared_data, ws) -> h.Dataset:
    src = shared_data / "ISBI2012_EM"
    assert (src / "dataset.json").is_file(), f"{src} is incomplete"
    from nnunet_msa.pipeline.plans_edit import case_ids
    cases = case_ids(str(src))[:10]
    return _prepare(ws, 501, "ISBI2012_EM", lambda raw: h.cropped_png_dataset(src, raw, 128, cases),
                    n_train=7, n_val=1, n_predict=2)


def _brats(shared_data, ws) -> h.Dataset:
    src = shared_data / "BraTS2013_examples"
    assert (src / "dataset.json").is_file(), f"{src} is incomplete"
    return _prepare(ws, 502, "BraTS2013_examples",
                    lambda raw: h.cropped_nifti_dataset(src, raw, size_xy=96, n_slices=8),
                    n_train=4, n_val=1, n_predict=1)


@pytest.fixture(scope="module")
def prepared(shared_data, e2e_workspace) -> Dict[str, h.Dataset]:
    """Both datasets made, planned, trained and predicted at the same time (two threads: each command sequence is
    mostly single-threaded start-up, planning and export; the CPU column of the command summary then counts both)."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(make, shared_data, e2e_workspace) for name, make in (("isbi", _isbi),
                                                                                          ("brats", _brats))}
        return {name: f.result() for name, f in futures.items()}


@pytest.fixture(scope="module")
def isbi(prepared) -> h.Dataset:
    return prepared["isbi"]


@pytest.fixture(scope="module")
def brats(prepared) -> h.Dataset:
    return prepared["brats"]


@pytest.fixture(scope="module", params=["isbi", "brats"])
def dataset(request) -> h.Dataset:
    return request.getfixturevalue(request.param)


# ------------------------------------------------------------------------------------------------ plan and preprocess
def test_planned_2d_for_the_channels_and_preprocessed_every_case(dataset) -> None:
    with open(dataset.preprocessed_dir / "nnUNetPlans.json") as f:
        plans = json.load(f)
    assert plans["configurations"]["2d_bs2"] == {"inherits_from": "2d", "batch_size": BATCH}
    with open(dataset.preprocessed_dir / "dataset.json") as f:
        assert len(json.load(f)["channel_names"]) == dataset.num_channels
    data_dir = dataset.preprocessed_dir / plans["configurations"]["2d"]["data_identifier"]
    preprocessed = {p.name.split(".")[0] for p in data_dir.iterdir() if not p.name.endswith(".pkl")}
    assert set(dataset.train_ids + dataset.val_ids + dataset.predict_ids) <= preprocessed


# ------------------------------------------------------------------------------------------------ training
def test_trained_msa2_takes_all_input_channels(dataset) -> None:
    ckpt = h.load_checkpoint(dataset.model_dir / "fold_0" / "checkpoint_final.pth")
    assert ckpt["trainer_name"] == TRAINER
    weights = ckpt["network_weights"]
    assert any(k.endswith(".temperature") for k in weights), "no SACM temperature buffer in the saved weights"
    # the encoder's first convolution (state_dict order is registration order), 2d: (out, in, k, k)
    first_conv = next(v for k, v in weights.items() if k.startswith("encoder.") and k.endswith(".weight")
                      and v.ndim == 4)
    assert first_conv.shape[1] == dataset.num_channels, f"first convolution takes {first_conv.shape[1]} channels"
    with open(dataset.model_dir / "fold_0" / "validation" / "summary.json") as f:
        summary = json.load(f)
    assert len(summary["metric_per_case"]) == len(dataset.val_ids)
    assert set(summary["mean"]) == {str(l) for l in dataset.labels if l != 0}


# ------------------------------------------------------------------------------------------------ prediction
def test_prediction_for_every_input_with_the_input_geometry_and_dataset_labels(dataset) -> None:
    written = sorted(p.name for p in dataset.predictions.iterdir() if p.name.endswith(dataset.file_ending))
    assert written == sorted(f"{c}{dataset.file_ending}" for c in dataset.predict_ids)
    for case in dataset.predict_ids:
        pred = dataset.predictions / f"{case}{dataset.file_ending}"
        for image in dataset.image_files(case):
            if dataset.file_ending == ".png":
                h.assert_same_shape(pred, image)
            else:
                h.assert_same_geometry(pred, image)
        values = h.label_values(pred)
        assert values <= dataset.labels, f"{case}: labels {values} not in {dataset.labels}"


# ------------------------------------------------------------------------------------------------ bad input
def test_predict_with_a_missing_channel_fails_naming_the_channels(brats, e2e_workspace, tmp_path) -> None:
    """The 2-channel BraTS model given only the FLAIR file (``_0000``) of a case: ``nnUNetv2_predict`` exits
    non-zero with the network's message that names the channel counts and the fix; nothing is written."""
    import os

    ws = e2e_workspace
    case = brats.predict_ids[0]
    inputs = tmp_path / "one_channel"
    inputs.mkdir()
    first = brats.image_files(case)[0]
    os.symlink(first, inputs / first.name)
    out = tmp_path / "out"
    ran = h.run(["nnUNetv2_predict", "-i", str(inputs), "-o", str(out), "-d", str(brats.dataset_id), "-c",
                 brats.configs["2d"], "-f", "0", "-tr", TRAINER, "-device", "cpu", "-npp", "1", "-nps", "1",
                 "--disable_tta"], ws.env, ws.logs / "brats_predict_one_channel.log", check=False,
                label="nnUNetv2_predict BraTS with one of two channels")
    assert ran.returncode != 0, ran.output[-2000:]
    assert "built for 2 input channel(s)" in ran.output and "got 1" in ran.output, ran.output[-3000:]
    assert "Give the same channels" in ran.output
    assert "_0001" in ran.output  # the fix names the missing file
    assert not (out.exists() and list(out.glob(f"*{brats.file_ending}")))
