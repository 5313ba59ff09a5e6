"""Issue 7 end to end on Task04_Hippocampus with nnU-Net's real commands: every named architecture trainer
(FIAS, QTSeg, Attention U-Net gate, CBAM, SE, selective kernel) trains with ``nnUNetv2_train`` (2 iterations); FIAS,
QTSeg and the attention gate predict a validation case with ``nnUNetv2_predict`` in a fresh process on the 2d
configuration, the others are predicted by nnU-Net's end-of-training validation (its sliding-window predictor,
without test-time mirroring). FIAS and QTSeg, whose modules have 3D-specific parts (3D depthwise kernels, MLFD's
3D resampling, dual-mix attention over a 3D patch), train and predict their validation cases (nnU-Net's validation)
on 3d_fullres too. The runs go two at a time (one module fixture). The other trainers' 3D networks train from the
real 3D plans in-process (tests/test_architecture_options.py): a real run costs ~30 s each."""
from __future__ import annotations

from typing import Dict, Tuple

import pytest

import e2e_helpers as h
import pipeline_runs as pr

pytestmark = pytest.mark.e2e

RUNS = [(t, "2d") for t in ("nnUNetTrainerFIAS", "nnUNetTrainerQTSeg", "nnUNetTrainerAttnGate", "nnUNetTrainerCBAM",
                            "nnUNetTrainerSE", "nnUNetTrainerSelectiveKernel")]
RUNS += [("nnUNetTrainerFIAS", "3d_fullres"), ("nnUNetTrainerQTSeg", "3d_fullres")]
#: 2d runs also predicted by ``nnUNetv2_predict`` in a fresh process: the two with their own decoder parts and one
#: skip gate (CBAM, SE and the selective kernel are found and built the same way; nnU-Net's validation at the end of
#: their training runs the sliding-window predictor on them in-process)
FRESH_PREDICTION = ("nnUNetTrainerFIAS", "nnUNetTrainerQTSeg", "nnUNetTrainerAttnGate")

#: a parameter-name fragment each trainer's network must have (and MASAG's / SACM's that it must not)
EXPECTED_WEIGHTS = {
    "nnUNetTrainerFIAS": ("gates.0.ch_in.weight", "context.0.weight"),
    "nnUNetTrainerQTSeg": ("mlfd.paths.0", "decoder.query_tokens"),
    "nnUNetTrainerAttnGate": ("gates.0.psi.weight",),
    "nnUNetTrainerCBAM": ("gates.0.spatial.weight",),
    "nnUNetTrainerSE": ("gates.0.fc1.weight",),
    "nnUNetTrainerSelectiveKernel": ("branches.1.0.weight", "gates.0.select.weight"),
}


def _fresh(trainer: str, configuration: str) -> bool:
    return configuration == "2d" and trainer in FRESH_PREDICTION


def _validation(trainer: str, configuration: str) -> str:
    """nnU-Net's end-of-training validation is the prediction test of the runs not predicted in a fresh process
    (without test-time mirroring); the others skip it (``e2e_helpers.with_budget``)."""
    return "off" if _fresh(trainer, configuration) else "no_mirroring"


def _tag(trainer: str, config: str) -> str:
    return f"{trainer}_budget_{config}"


def _failed(ran: h.Ran, log) -> str:
    tail = "\n".join(ran.output.splitlines()[-40:])
    return f"command failed (exit {ran.returncode}): {' '.join(ran.args)}\n--- last output ---\n{tail}\n(log: {log})"


@pytest.fixture(scope="module")
def runs(hippocampus, e2e_workspace) -> Dict[Tuple[str, str], dict]:
    """Every run of ``RUNS`` trained (``nnUNetv2_train``, 2 iterations), then its validation case predicted by
    ``nnUNetv2_predict`` in a fresh process (2d runs), two commands at a time as in tests/pipeline_runs.py (a
    short run is mostly single-threaded start-up, validation and export); (trainer, configuration) -> the finished
    commands. A command that fails fails only its own test."""
    ws, ds = e2e_workspace, hippocampus
    case = ds.val_ids[0]
    trainings = []
    for trainer, configuration in RUNS:
        config, tag = ds.configs[configuration], _tag(trainer, ds.configs[configuration])
        trainings.append(pr.Job(["nnUNetv2_train", str(ds.dataset_id), config, "0", "-tr", f"{trainer}_budget",
                                 "-device", "cpu"], h.with_budget(ws.env, 1, 2, 1, _validation(trainer, configuration)),
                                ws.logs / f"train_{tag}.log",
                                f"nnUNetv2_train 4 {config} 0 -tr {trainer}_budget"))
    out = {run: {"train": ran, "train_log": job.log}
           for run, job, ran in zip(RUNS, trainings, pr.run_jobs(trainings, check=False))}
    predictions, predicted = [], []
    for trainer, configuration in RUNS:
        if not _fresh(trainer, configuration) or out[(trainer, configuration)]["train"].returncode != 0:
            continue
        config, tag = ds.configs[configuration], _tag(trainer, ds.configs[configuration])
        inputs = h.link_inputs(ds, [case], ws.root / "predict_in" / tag)
        folder = ws.root / "predict_out" / tag
        predictions.append(pr.Job(["nnUNetv2_predict", "-i", str(inputs), "-o", str(folder), "-d",
                                   str(ds.dataset_id), "-c", config, "-f", "0", "-tr", f"{trainer}_budget", "-device",
                                   "cpu", *h.SEQUENTIAL_PREDICT, "--disable_tta"], ws.env,
                                  ws.logs / f"predict_{tag}.log",
                                  f"nnUNetv2_predict -tr {trainer}_budget -c {config}"))
        predicted.append((trainer, configuration, folder / f"{case}.nii.gz"))
    for (trainer, configuration, prediction), job, ran in zip(predicted, predictions,
                                                               pr.run_jobs(predictions, check=False)):
        out[(trainer, configuration)].update(predict=ran, predict_log=job.log, prediction=prediction)
    return out


@pytest.mark.parametrize("trainer,configuration", RUNS, ids=[f"{t[len('nnUNetTrainer'):]}-{c}" for t, c in RUNS])
def test_architecture_trainer_trains_and_predicts(runs, hippocampus, e2e_workspace, trainer, configuration):
    ws, ds = e2e_workspace, hippocampus
    config = ds.configs[configuration]
    budget_trainer = f"{trainer}_budget"
    run = runs[(trainer, configuration)]
    ran = run["train"]
    assert ran.returncode == 0, _failed(ran, run["train_log"])
    model = ws.results / ds.name / f"{budget_trainer}__nnUNetPlans__{config}"
    ckpt = h.load_checkpoint(model / "fold_0" / "checkpoint_final.pth")
    assert ckpt["trainer_name"] == budget_trainer and ckpt["current_epoch"] == 1
    keys = list(ckpt["network_weights"].keys())
    for fragment in EXPECTED_WEIGHTS[trainer]:
        assert any(fragment in k for k in keys), f"{trainer}: no weight '{fragment}' in {keys[:40]}"
    if trainer != "nnUNetTrainerSelectiveKernel":
        assert not any(k.endswith(".temperature") for k in keys), "an SACM layer in a trainer without SACM"
        assert "SACM temperature" not in ran.output
    if _fresh(trainer, configuration):  # nnUNetMSA_validation=off: no validation, said in the log
        assert not (model / "fold_0" / "validation").exists() and "validation is skipped" in ran.output
    else:
        assert "validating without test-time mirroring" in ran.output
        assert (model / "fold_0" / "validation" / "summary.json").is_file(), "nnU-Net's validation did not finish"
        # 3d (and 2d runs not in FRESH_PREDICTION): the prediction is nnU-Net's own validation inside nnUNetv2_train (its nnUNetPredictor, sliding window
        # over the whole case, resampled to the raw geometry); the 2d runs of the same trainers test nnUNetv2_predict
        for case in ds.val_ids:
            h.assert_same_geometry(model / "fold_0" / "validation" / f"{case}.nii.gz", ds.image_files(case)[0])
        return
    assert run["predict"].returncode == 0, _failed(run["predict"], run["predict_log"])
    case, prediction = ds.val_ids[0], run["prediction"]
    assert prediction.is_file(), f"no prediction {prediction}"
    h.assert_same_geometry(prediction, ds.image_files(case)[0])
    assert h.label_values(prediction) <= {0, 1, 2}
