"""A trained model survives an upgrade that changes its trainer's default (issue 32), through the real commands on
Task04_Hippocampus (2d, batch 4, one epoch of two iterations):

- a fold is trained with one network (the trainer ``nnUNetTrainerMSA2_upgradeTest`` of a test-only module whose
  options are the dense candidates, ``msa2_denseCandidates``: the default of an earlier version); then the
  module is rewritten so that the same trainer name builds today's default (``msa2``: shared candidates), as an
  upgrade would;
- after the change ``nnUNetv2_predict``, ``nnUNetv2_train --val`` and ``--c`` give the predictions of before the
  change, voxel for voxel, and so does the model after ``nnUNetv2_export_model_to_zip`` ->
  ``nnUNetv2_install_pretrained_model_from_zip``; a new fold in that model folder is refused with both networks
  named;
- a model folder without a record (trained before 0.2.0) fails prediction with the preset its weights fit and the
  command to record it; ``nnunet-msa record-network`` finds that preset from the weights, and prediction then
  gives the predictions of before;
- plans written by ``nnunet-msa plan --preset msa2_fast`` train the separable network with the trainer the command
  prints, and the default trainer refuses them with the conflict named.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest

import e2e_helpers as h

pytestmark = pytest.mark.e2e

TRAINER = "nnUNetTrainerMSA2_upgradeTest"
BEFORE, AFTER = "msa2_denseCandidates", "msa2"
MODULE = '''
from nnunet_msa.network.presets import resolved_options
from nnunet_msa.training import nnUNetTrainerMSA2_budget


class {name}(nnUNetTrainerMSA2_budget):
    """Test trainer: its default network is preset {preset}."""
    msa2_options = resolved_options("{preset}")
    preset_name = "{preset}"
'''


def _write_trainer(folder: Path, preset: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(folder / "__pycache__", ignore_errors=True)
    (folder / "upgrade_trainer.py").write_text(MODULE.format(name=TRAINER, preset=preset))


def _segmentations(folder: Path) -> Dict[str, np.ndarray]:
    out = {p.name: h.label_array(p) for p in sorted(folder.glob("*.nii.gz"))}
    assert out, f"no predictions in {folder}"
    return out


def _assert_same(a: Dict[str, np.ndarray], b: Dict[str, np.ndarray]) -> None:
    assert sorted(a) == sorted(b)
    for name in a:
        assert np.array_equal(a[name], b[name]), f"{name}: {int((a[name] != b[name]).sum())} voxels differ"


class Model:
    """The module's trained fold and everything the tests compare with."""

    def __init__(self, ws, ds, root: Path):
        self.ws, self.ds, self.root = ws, ds, root
        self.ext = root / "ext_trainers"
        self.results = root / "nnUNet_results"
        self.config = ds.configs["2d"]
        self.folder = self.results / ds.name / f"{TRAINER}__nnUNetPlans__{self.config}"
        self.inputs = h.link_inputs(ds, ds.predict_ids, root / "inputs")

    def env(self, results: Path = None) -> Dict[str, str]:
        env = h.with_budget(self.ws.env, 1, 2, 1)
        env.update(nnUNet_results=str(results or self.results), nnUNet_n_proc_DA="0", nnUNetMSA_seed="7",
                   nnUNet_extTrainer=os.pathsep.join([str(self.ext), self.ws.env["nnUNet_extTrainer"]]))
        return env

    def train(self, fold: int, *extra: str, check: bool = True, label: str = "") -> h.Ran:
        return h.run(["nnUNetv2_train", str(self.ds.dataset_id), self.config, str(fold), "-tr", TRAINER, "-device",
                      "cpu", *extra], self.env(), self.ws.logs / f"upgrade_train_{fold}{''.join(extra)}.log",
                     check=check, label=label or f"nnUNetv2_train {TRAINER} {' '.join(extra)}")

    def predict(self, name: str, results: Path = None, check: bool = True) -> h.Ran:
        out = self.root / f"pred_{name}"
        return h.run(["nnUNetv2_predict", "-i", str(self.inputs), "-o", str(out), "-d", str(self.ds.dataset_id),
                      "-c", self.config, "-tr", TRAINER, "-f", "0", "-device", "cpu", "--disable_tta",
                      *h.SEQUENTIAL_PREDICT, "--disable_progress_bar"], self.env(results),
                     self.ws.logs / f"upgrade_{name}.log", check=check, label=f"nnUNetv2_predict ({name})")

    def validation(self) -> Dict[str, np.ndarray]:
        return _segmentations(self.folder / "fold_0" / "validation")


@pytest.fixture(scope="module")
def model(hippocampus, e2e_workspace, tmp_path_factory) -> Model:
    """Fold 0 trained with the earlier default, its predictions and validation; then the trainer's default
    changed to today's."""
    m = Model(e2e_workspace, hippocampus, tmp_path_factory.mktemp("upgrade"))
    _write_trainer(m.ext, BEFORE)
    m.train(0, label=f"nnUNetv2_train {TRAINER} (default {BEFORE})")
    m.predict("before")
    m.before = _segmentations(m.root / "pred_before")
    m.validation_before = m.validation()
    _write_trainer(m.ext, AFTER)
    return m


def test_the_model_folder_records_its_network(model) -> None:
    plans = json.loads((model.folder / "plans.json").read_text())
    record = plans["configurations"][model.config]["nnunet_msa_network"]
    assert record["trainer"] == TRAINER and record["preset"] == BEFORE
    assert record["options"]["sacm_realization"] == "dilated" and record["nnunet_msa_version"]
    ckpt = h.load_checkpoint(model.folder / "fold_0" / "checkpoint_final.pth")
    assert ckpt["init_args"]["plans"]["configurations"][model.config]["nnunet_msa_network"] == record


def test_predict_after_the_default_changed_gives_the_same_segmentation(model) -> None:
    ran = model.predict("after")
    _assert_same(model.before, _segmentations(model.root / "pred_after"))
    assert "Unexpected key" not in ran.output


def test_val_and_continue_after_the_default_changed_give_the_same_validation(model) -> None:
    ran = model.train(0, "--val")
    assert "Using the recorded network" in ran.output and "'dilated' (recorded) vs 'shared' (today)" in ran.output
    _assert_same(model.validation_before, model.validation())
    model.train(0, "--c")
    _assert_same(model.validation_before, model.validation())
    plans = json.loads((model.folder / "plans.json").read_text())
    assert plans["configurations"][model.config]["nnunet_msa_network"]["preset"] == BEFORE


def test_a_new_fold_of_another_network_is_refused_naming_both(model) -> None:
    ran = model.train(1, check=False)
    assert ran.returncode != 0
    assert "holds a model of another network" in ran.output, ran.output[-3000:]
    assert f"preset {BEFORE}" in ran.output and f"preset {AFTER}" in ran.output
    assert "nnUNetMSA_network=recorded" in ran.output
    assert not (model.folder / "fold_1" / "checkpoint_final.pth").exists()


def test_export_and_install_keep_the_network(model) -> None:
    zipped = model.root / "model.zip"
    h.run(["nnUNetv2_export_model_to_zip", "-d", str(model.ds.dataset_id), "-o", str(zipped), "-c", model.config,
           "-tr", TRAINER, "-f", "0"], model.env(), model.ws.logs / "upgrade_export.log")
    installed = model.root / "nnUNet_results_installed"
    h.run(["nnUNetv2_install_pretrained_model_from_zip", str(zipped)], model.env(installed),
          model.ws.logs / "upgrade_install.log")
    model.predict("installed", results=installed)
    _assert_same(model.before, _segmentations(model.root / "pred_installed"))


def test_a_model_without_record_is_named_and_recorded_from_its_weights(model) -> None:
    old = model.root / "nnUNet_results_old"
    folder = old / model.ds.name / model.folder.name
    shutil.copytree(model.folder, folder, ignore=shutil.ignore_patterns("validation"))
    plans = json.loads((folder / "plans.json").read_text())
    del plans["configurations"][model.config]["nnunet_msa_network"]
    (folder / "plans.json").write_text(json.dumps(plans, indent=4))

    failed = model.predict("unrecorded", results=old, check=False)
    assert failed.returncode != 0
    assert f"They fit the network of preset(s): {BEFORE}" in failed.output, failed.output[-3000:]
    assert "nnunet-msa record-network" in failed.output

    recorded = h.run(["nnunet-msa", "record-network", str(folder)], model.env(old), model.ws.logs / "upgrade_rec.log")
    assert f"preset {BEFORE}" in recorded.output
    assert (folder / "plans.json.before_record").is_file()
    model.predict("recorded", results=old)
    _assert_same(model.before, _segmentations(model.root / "pred_recorded"))


def test_plans_for_a_preset_train_that_preset_network(hippocampus, e2e_workspace, tmp_path) -> None:
    """``nnunet-msa plan --preset msa2_fast`` prints ``-tr nnUNetTrainerMSA2_fast``; that trainer (its budget
    variant) trains the separable network on the plans; the default trainer refuses them naming the conflict."""
    from nnunet_msa.pipeline.plans_edit import add_inherited_configuration

    ws, ds = e2e_workspace, hippocampus
    ran = h.run(["nnunet-msa", "plan", "-d", str(ds.dataset_id), "-c", "2d", "--preset", "msa2_fast", "--no_pp",
                 "--no_pbar"], ws.env, ws.logs / "plan_preset_fast.log", label="nnunet-msa plan --preset msa2_fast")
    plans_name = "nnUNetMSA2Plans_msa2_fast"
    assert f"-tr nnUNetTrainerMSA2_fast -p {plans_name}" in ran.output, ran.output[-2000:]
    # the same preprocessed data as nnU-Net's 2d (test_e2e_ablation_and_plans checks that `plan` writes exactly it)
    data = ds.preprocessed_dir / f"{plans_name}_2d"
    if not data.exists():
        data.symlink_to(ds.preprocessed_dir / "nnUNetPlans_2d", target_is_directory=True)
    config = add_inherited_configuration(str(ds.preprocessed_dir), "2d", "2d_bs4", 4, plans_name=plans_name)
    results = tmp_path / "nnUNet_results"
    env = h.with_budget(ws.env, 1, 1, 1, validation="off")
    env.update(nnUNet_results=str(results), nnUNet_n_proc_DA="0")

    def train(trainer: str, check: bool = True) -> h.Ran:
        return h.run(["nnUNetv2_train", str(ds.dataset_id), config, "0", "-tr", trainer, "-p", plans_name, "-device",
                      "cpu"], env, ws.logs / f"plan_preset_{trainer}.log", check=check,
                     label=f"nnUNetv2_train -tr {trainer} -p {plans_name}")

    refused = train("nnUNetTrainerMSA2_budget", check=False)
    assert refused.returncode != 0
    assert "sacm_realization: 'separable' (plans) vs 'shared' (nnUNetTrainerMSA2_budget)" in refused.output, \
        refused.output[-3000:]
    assert "-tr nnUNetTrainerMSA2_fast" in refused.output
    train("nnUNetTrainerMSA2_fast_budget")
    folder = results / ds.name / f"nnUNetTrainerMSA2_fast_budget__{plans_name}__{config}"
    record = json.loads((folder / "plans.json").read_text())["configurations"][config]["nnunet_msa_network"]
    assert record["options"]["sacm_realization"] == "separable" and record["preset"] == "msa2_fast"
    keys = h.load_checkpoint(folder / "fold_0" / "checkpoint_final.pth")["network_weights"].keys()
    assert any("depthwise" in k or "pointwise" in k for k in keys), sorted(keys)[:40]
