"""End to end on Task04_Hippocampus with nnU-Net's real commands in subprocesses: ``nnUNetv2_train`` with
``-tr nnUNetTrainerMSA2_budget`` (2d and 3d_fullres, via small-batch configurations that inherit the planned ones),
then ``nnUNetv2_predict`` in a fresh process that finds the trainer only through ``nnUNet_extTrainer``.

The trained models are fold 0 of the cross-validation of tests/test_e2e_pipeline.py (one run each per
session, tests/pipeline_runs.py)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict

import pytest

import e2e_helpers as h
import pipeline_runs as pr

pytestmark = pytest.mark.e2e

TRAINER = pr.MSA2_BUDGET


def _train(ds: h.Dataset, ws, base_config: str) -> dict:
    """Fold 0 of ``TRAINER`` on ``base_config`` (trained once per session, with the budget of
    ``pipeline_runs.BUDGETS``: 2d 1 epoch × 2 iterations, 3d_fullres 1 × 1; the first call trains both
    configurations at once); the result describes the model folder and the run."""
    t = pr.train(ws, ds, [(TRAINER, "2d", 0), (TRAINER, "3d_fullres", 0)])[(TRAINER, base_config, 0)]
    return dict(config=t.config, model_dir=t.model_dir, fold_dir=t.fold_dir, output=t.output, epochs=t.epochs,
                iterations=t.iterations)


@pytest.fixture(scope="module", params=["2d", "3d_fullres"])
def trained(request, hippocampus, e2e_workspace) -> dict:
    return _train(hippocampus, e2e_workspace, request.param)


_predicted: Dict[str, dict] = {}


def _predict(ds: h.Dataset, ws, base_config: str) -> dict:
    """``nnUNetv2_predict`` of the trained model on ``ds.predict_ids`` in a fresh process (once per configuration
    and session), without test-time mirroring (4 passes per 2D patch, 8 per 3D patch): nnU-Net's end-of-training
    validation ran the mirrored passes already."""
    if base_config not in _predicted:
        config = _train(ds, ws, base_config)["config"]
        inputs = h.link_inputs(ds, ds.predict_ids, ws.root / "predict_in" / "hippocampus")
        out = ws.root / "predict_out" / f"hippocampus_{config}"
        ran = h.run(["nnUNetv2_predict", "-i", str(inputs), "-o", str(out), "-d", str(ds.dataset_id), "-c", config,
                     "-f", "0", "-tr", TRAINER, "-device", "cpu", "-npp", "1", "-nps", "1", "--disable_tta",
                     "--save_probabilities"], ws.env, ws.logs / f"hippocampus_predict_{config}.log",
                    label=f"nnUNetv2_predict 4 {config}")
        _predicted[base_config] = dict(out=out, inputs=inputs, output=ran.output, config=config)
    return _predicted[base_config]


@pytest.fixture(scope="module")
def predicted(hippocampus, e2e_workspace) -> dict:
    """The 2d model's prediction. 3D MSA2 models are predicted by nnUNetv2_predict in fresh processes in
    tests/test_e2e_pipeline.py (3d_lowres and 3d_cascade_fullres of the regions dataset, with the same checks, and
    the cross-validated models of the inference instructions)."""
    return _predict(hippocampus, e2e_workspace, "2d")


def _network_from_saved_plans(trained: dict):
    """The network ``nnUNetTrainerMSA2_budget`` builds from the plans and dataset.json nnU-Net saved with the model
    (what the predictor does)."""
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
    from nnunet_msa.training import nnUNetTrainerMSA2_budget

    pm = PlansManager(str(trained["model_dir"] / "plans.json"))
    with open(trained["model_dir"] / "dataset.json") as f:
        dataset_json = json.load(f)
    return nnUNetTrainerMSA2_budget.build_network_architecture(
        pm, pm.get_configuration(trained["config"]), len(dataset_json["channel_names"]),
        pm.get_label_manager(dataset_json).num_segmentation_heads, True)


# ------------------------------------------------------------------------------------------------ training
def test_checkpoint_names_the_trainer_and_holds_the_planned_msa2_network(trained) -> None:
    ckpt_path = trained["fold_dir"] / "checkpoint_final.pth"
    assert ckpt_path.is_file(), f"no {ckpt_path}; files: {sorted(p.name for p in trained['fold_dir'].iterdir())}"
    ckpt = h.load_checkpoint(ckpt_path)
    assert ckpt["trainer_name"] == TRAINER
    assert ckpt["init_args"]["configuration"] == trained["config"]
    assert ckpt["current_epoch"] == trained["epochs"]
    weights = ckpt["network_weights"]

    # the saved weights are exactly those of the MSA2 network the trainer class builds from the saved plans
    net = _network_from_saved_plans(trained)
    assert set(weights) == set(net.state_dict()), "checkpoint keys differ from the network built from the plans"
    for key, value in net.state_dict().items():
        assert tuple(weights[key].shape) == tuple(value.shape), key


def test_sacm_temperatures_are_saved_with_the_value_of_the_last_step(trained) -> None:
    from nnunet_msa.blocks.observe import unwrap
    from nnunet_msa.blocks.sacm import SACM
    from nnunet_msa.training import nnUNetTrainerMSA2_budget as cls
    from nnunet_msa.training.temperature import annealed_temperature

    weights = h.load_checkpoint(trained["fold_dir"] / "checkpoint_final.pth")["network_weights"]
    temps = {k: v for k, v in weights.items() if k.endswith(".temperature")}
    sacms = {f"{name}.temperature" for name, m in unwrap(_network_from_saved_plans(trained)).named_modules()
             if isinstance(m, SACM)}
    assert sacms, "the MSA2 network has no SACM"
    assert set(temps) == sacms, "the saved temperature buffers are not those of the network's SACMs"
    assert all(v.ndim == 0 for v in temps.values())
    epochs, iterations = trained["epochs"], trained["iterations"]
    last = epochs * iterations - 1
    expected = annealed_temperature(last, epochs, iterations, cls.tau0, cls.anneal_fraction) \
        if cls.anneal_temperature else 1.0
    for key, value in temps.items():
        assert float(value) == pytest.approx(expected), f"{key} = {float(value)}, schedule says {expected}"
    # the trainer logged the temperature of the first step of the epoch
    first = annealed_temperature(0, epochs, iterations, cls.tau0, cls.anneal_fraction) \
        if cls.anneal_temperature else 1.0
    assert f"SACM temperature: {first:.3f}" in trained["output"]


def test_nnunet_validated_on_the_split_validation_cases(trained, hippocampus) -> None:
    summary_path = trained["fold_dir"] / "validation" / "summary.json"
    assert summary_path.is_file(), "nnU-Net's end-of-training validation wrote no summary.json"
    with open(summary_path) as f:
        summary = json.load(f)
    validated = sorted(Path(c["prediction_file"]).name for c in summary["metric_per_case"])
    assert validated == sorted(f"{c}.nii.gz" for c in hippocampus.val_ids)
    assert set(summary["mean"]) == {str(l) for l in hippocampus.labels if l != 0}
    for case in hippocampus.val_ids:
        pred = trained["fold_dir"] / "validation" / f"{case}.nii.gz"
        h.assert_same_geometry(pred, hippocampus.image_files(case)[0])


# ------------------------------------------------------------------------------------------------ prediction
def test_predictor_found_the_trainer_through_nnunet_ext_trainer(predicted) -> None:
    from nnunet_msa.pipeline.trainers_path import trainers_path

    assert f"Using trainer '{TRAINER}' from: {trainers_path()}" in predicted["output"]


def test_prediction_for_every_input(predicted, hippocampus) -> None:
    written = sorted(p.name for p in predicted["out"].glob("*.nii.gz"))
    assert written == sorted(f"{c}.nii.gz" for c in hippocampus.predict_ids)


def test_predictions_have_the_input_geometry_and_dataset_labels(predicted, hippocampus) -> None:
    for case in hippocampus.predict_ids:
        pred = predicted["out"] / f"{case}.nii.gz"
        assert pred.is_file(), f"no prediction for {case}"
        h.assert_same_geometry(pred, hippocampus.image_files(case)[0])
        values = h.label_values(pred)
        assert values <= hippocampus.labels, f"{case}: labels {values} not in {hippocampus.labels}"


def test_predict_fails_clearly_without_nnunet_ext_trainer(hippocampus, e2e_workspace, tmp_path) -> None:
    """The same prediction with ``nnUNet_extTrainer`` unset: nnU-Net cannot find the trainer and says so."""
    ws, ds = e2e_workspace, hippocampus
    model = _train(ds, ws, "2d")
    env = {k: v for k, v in ws.env.items() if k != "nnUNet_extTrainer"}
    inputs = h.link_inputs(ds, ds.predict_ids[:1], tmp_path / "in")
    ran = h.run(["nnUNetv2_predict", "-i", str(inputs), "-o", str(tmp_path / "out"), "-d", str(ds.dataset_id),
                 "-c", model["config"], "-f", "0", "-tr", TRAINER, "-device", "cpu", "-npp", "1", "-nps", "1"],
                env, ws.logs / "hippocampus_predict_without_ext_trainer.log", check=False,
                label="nnUNetv2_predict without nnUNet_extTrainer")
    assert ran.returncode != 0
    assert "nnUNet_extTrainer" in ran.output
    assert f"Could not find requested nnunet trainer {TRAINER}" in ran.output
    assert not list((tmp_path / "out").glob("*.nii.gz"))


# ------------------------------------------------------------------------------------------------ export
def test_exported_model_installed_into_empty_folders_predicts_the_same_labels(hippocampus, e2e_workspace,
                                                                              tmp_path) -> None:
    """``nnUNetv2_export_model_to_zip``, ``nnUNetv2_install_pretrained_model_from_zip`` into empty nnU-Net folders
    (a colleague's machine), ``nnUNetv2_predict`` there: the same labels, voxel for voxel, and the same class
    probabilities as before the export (a model trained 2 iterations may predict background only: the
    probabilities are what tells two networks apart).
    Catches a checkpoint that only loads beside its training folders (plans, dataset.json, trainer lookup)."""
    import numpy as np
    import SimpleITK as sitk
    from nnunet_msa.pipeline.environment import nnunet_env

    ws, ds = e2e_workspace, hippocampus
    before = _predict(ds, ws, "2d")
    config = before["config"]
    archive = tmp_path / "model.zip"
    h.run(["nnUNetv2_export_model_to_zip", "-d", str(ds.dataset_id), "-o", str(archive), "-c", config, "-tr",
           TRAINER, "-f", "0"], ws.env, ws.logs / "hippocampus_export.log", label="nnUNetv2_export_model_to_zip")
    assert archive.is_file() and archive.stat().st_size > 0
    elsewhere = nnunet_env(str(tmp_path / "colleague"), extra={"nnUNet_def_n_proc": "1"})
    elsewhere.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    assert not any(Path(elsewhere["nnUNet_results"]).glob("*")), "the install target is not empty"
    h.run(["nnUNetv2_install_pretrained_model_from_zip", str(archive)], elsewhere,
          ws.logs / "hippocampus_install.log", label="nnUNetv2_install_pretrained_model_from_zip")
    out = tmp_path / "predicted_after_install"
    h.run(["nnUNetv2_predict", "-i", str(before["inputs"]), "-o", str(out), "-d", str(ds.dataset_id), "-c", config,
           "-f", "0", "-tr", TRAINER, "-device", "cpu", *h.SEQUENTIAL_PREDICT, "--disable_tta",
           "--save_probabilities"], elsewhere,
          ws.logs / "hippocampus_predict_installed.log", label="nnUNetv2_predict (installed model)")
    for case in ds.predict_ids:
        a = sitk.GetArrayFromImage(sitk.ReadImage(str(before["out"] / f"{case}.nii.gz")))
        b = sitk.GetArrayFromImage(sitk.ReadImage(str(out / f"{case}.nii.gz")))
        assert a.shape == b.shape and np.array_equal(a, b), f"{case}: labels differ after export/install"
        pa = np.load(before["out"] / f"{case}.npz")["probabilities"]
        pb = np.load(out / f"{case}.npz")["probabilities"]
        assert pa.shape == pb.shape and float(np.abs(pa - pb).max()) < 1e-6, f"{case}: probabilities differ"
