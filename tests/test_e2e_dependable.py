"""Issue 5 end to end on Task04_Hippocampus (2d, batch 4) with nnU-Net's real ``nnUNetv2_train`` in subprocesses:

- an interrupted run (SIGKILL after a ``checkpoint_latest.pth``) continues with ``--c`` at the saved epoch, on the
  same SACM temperature curve and learning-rate schedule, with the logged history of before the interruption;
- ``nnUNetMSA_seed``: two runs with the same seed give the same first losses;
- a non-finite loss stops the training with a message naming the problem and the fix, before the weights change,
  and keeps the last good checkpoints.
"""
from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Dict, List, Optional

import pytest
import torch

import e2e_helpers as h

pytestmark = pytest.mark.e2e

TRAINER = "nnUNetTrainerMSA2_budget"
# 4 epochs of 3 iterations; the SACM temperature anneals over all 12 iterations (anneal fraction 1), so every
# epoch starts at a different τ and a resume at the wrong iteration shows; checkpoint_latest.pth after every epoch.
EPOCHS, ITERATIONS = 4, 3
SEED = 12345
FOLD = 1


def _results(ws, name: str = "dependable") -> Path:
    """This module's own nnUNet_results: its runs (killed, resumed, 4 epochs) must not mix with the shared models of
    the hippocampus split's folds (tests/pipeline_runs.py), nor the models of these runs with each other."""
    return ws.root / f"nnUNet_results_{name}"


def _env(ws, results: Optional[Path] = None, **extra: str) -> Dict[str, str]:
    env = h.with_budget(ws.env, EPOCHS, ITERATIONS, 1, validation="off")  # checkpoints are the subject here
    env["nnUNet_results"] = str(results or _results(ws))
    env.update(nnUNetMSA_save_every="1", nnUNetMSA_anneal_fraction="1.0", nnUNetMSA_seed=str(SEED),
               nnUNet_n_proc_DA="0")  # one process: the seeded patches come in a fixed order
    env.update(extra)
    return env


def _train_cmd(ds, fold: int, trainer: str = TRAINER, *extra: str) -> List[str]:
    return [h.console_script("nnUNetv2_train"), str(ds.dataset_id), ds.configs["2d"], str(fold), "-tr", trainer,
            "-device", "cpu", *extra]


def _fold_dir(results: Path, ds, fold: int, trainer: str = TRAINER) -> Path:
    return results / ds.name / f"{trainer}__nnUNetPlans__{ds.configs['2d']}" / f"fold_{fold}"


def _load(path: Path):
    return torch.load(path, map_location="cpu", weights_only=False)


def _kill_after_first_checkpoint(cmd: List[str], env: Dict[str, str], fold_dir: Path, log: Path,
                                 timeout: float = 240) -> dict:
    """Start ``nnUNetv2_train``, SIGKILL it (and its children) as soon as a complete ``checkpoint_latest.pth`` is
    on disk, return that checkpoint. Fails if the run ends or times out first."""
    latest = fold_dir / "checkpoint_latest.pth"
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        start = time.time()
        try:
            while True:
                if latest.is_file():
                    try:
                        ckpt = _load(latest)
                        break
                    except Exception:  # still being written
                        pass
                assert proc.poll() is None, f"training ended before a checkpoint_latest.pth; see {log}"
                assert time.time() - start < timeout, f"no checkpoint_latest.pth after {timeout} s; see {log}"
                time.sleep(0.1)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    h.TIMINGS.append((f"nnUNetv2_train (killed after epoch {ckpt['current_epoch'] - 1})", time.time() - start, 0.0))
    assert proc.returncode == -signal.SIGKILL, f"the run was not interrupted (exit {proc.returncode}); see {log}"
    assert not (fold_dir / "checkpoint_final.pth").exists()
    return ckpt


@pytest.fixture(scope="module")
def interrupted(hippocampus, e2e_workspace) -> dict:
    """Two seeded runs of the same fold, each in its own nnUNet_results ("twin", "main"), each killed after its
    first checkpoint."""
    ws, ds = e2e_workspace, hippocampus
    runs = {}
    for name in ("twin", "main"):
        results = _results(ws, "dependable" if name == "main" else "dependable_twin")
        fold_dir = _fold_dir(results, ds, FOLD)
        runs[name] = dict(fold_dir=fold_dir, checkpoint=_kill_after_first_checkpoint(
            _train_cmd(ds, FOLD), _env(ws, results), fold_dir, ws.logs / f"dependable_killed_{name}.log"))
    return runs


def test_same_seed_gives_the_same_first_losses(interrupted) -> None:
    """Same seed: same initial weights, same patches, same augmentation -> the same epoch-0 training loss."""
    a, b = (interrupted[name]["checkpoint"]["logging"]["train_losses"][0] for name in ("twin", "main"))
    assert math.isfinite(a) and a == b, (a, b)


def test_continue_resumes_epoch_temperature_schedule_and_history(hippocampus, e2e_workspace, interrupted) -> None:
    """``nnUNetv2_train ... --c``: the first epoch run is the saved one, its SACM temperature is the annealing
    curve's value at that global iteration (τ0 would mean the schedule restarted), its learning rate nnU-Net's poly
    schedule at that epoch, the history logged before the kill is kept, and the run finishes all epochs."""
    from nnunet_msa.training.temperature import annealed_temperature

    ws, ds = e2e_workspace, hippocampus
    run = interrupted["main"]
    saved = run["checkpoint"]
    resume_epoch = int(saved["current_epoch"])
    assert 1 <= resume_epoch < EPOCHS
    ran = h.run(_train_cmd(ds, FOLD, TRAINER, "--c"), _env(ws), ws.logs / "dependable_resumed.log",
                label=f"nnUNetv2_train --c (from epoch {resume_epoch})")
    epochs_run = [int(e) for e in re.findall(r"^.*Epoch (\d+)\s*$", ran.output, flags=re.M)]
    assert epochs_run and epochs_run[0] == resume_epoch, epochs_run
    assert epochs_run == list(range(resume_epoch, EPOCHS)), epochs_run
    taus = [float(t) for t in re.findall(r"SACM temperature: ([0-9.]+)", ran.output)]
    expected = annealed_temperature(resume_epoch * ITERATIONS, EPOCHS, ITERATIONS, 30.0, 1.0)
    assert taus and abs(taus[0] - expected) < 1e-3, (taus, expected)
    lrs = [float(x) for x in re.findall(r"Current learning rate: ([0-9.e-]+)", ran.output)]
    assert lrs and abs(lrs[0] - 1e-2 * (1 - resume_epoch / EPOCHS) ** 0.9) < 1e-5, lrs

    final = _load(run["fold_dir"] / "checkpoint_final.pth")
    assert final["current_epoch"] == EPOCHS
    before = saved["logging"]["train_losses"][:resume_epoch]
    assert final["logging"]["train_losses"][:resume_epoch] == before
    assert len(final["logging"]["train_losses"]) == EPOCHS
    assert all(math.isfinite(v) for v in final["logging"]["train_losses"])


POISONED_TRAINER = '''
from nnunet_msa.training import nnUNetTrainerMSA2_budget


class nnUNetTrainerMSA2_nanFromEpoch1(nnUNetTrainerMSA2_budget):
    """Test trainer: from epoch 1 on, the images of every batch are NaN (as a corrupt case would make them)."""

    def train_step(self, batch: dict) -> dict:
        if self.current_epoch >= 1:
            batch["data"] = batch["data"] * float("nan")
        return super().train_step(batch)
'''


def test_nonfinite_loss_stops_with_a_fix_and_keeps_the_last_good_checkpoint(hippocampus, e2e_workspace,
                                                                              tmp_path) -> None:
    """NaN images from epoch 1: nnU-Net alone would train on and save NaN weights. Ours exits non-zero at the first
    step of epoch 1 with the message, leaves epoch 0's checkpoint_latest/best untouched and finite, and saves the
    weights of that moment (finite: the step was refused) beside them; no checkpoint_final.pth."""
    ws, ds = e2e_workspace, hippocampus
    trainer = "nnUNetTrainerMSA2_nanFromEpoch1"
    ext = tmp_path / "ext_trainers"
    ext.mkdir()
    (ext / "poisoned_trainer.py").write_text(POISONED_TRAINER)
    env = _env(ws, nnUNet_extTrainer=os.pathsep.join([str(ext), ws.env["nnUNet_extTrainer"]]))
    ran = h.run(_train_cmd(ds, 0, trainer), env, ws.logs / "dependable_nonfinite.log", check=False,
                label="nnUNetv2_train with NaN images from epoch 1")
    assert ran.returncode != 0, ran.output[-2000:]
    assert "NonFiniteLossError" in ran.output and "Non-finite gradient at epoch 1, iteration 1/" in ran.output
    assert "Fix:" in ran.output and "--c" in ran.output
    fold = _fold_dir(_results(ws), ds, 0, trainer)
    assert not (fold / "checkpoint_final.pth").exists()
    latest = _load(fold / "checkpoint_latest.pth")
    assert latest["current_epoch"] == 1
    moment = _load(fold / "checkpoint_before_nonfinite.pth")
    for ckpt in (latest, _load(fold / "checkpoint_best.pth"), moment):
        assert all(torch.isfinite(v).all() for v in ckpt["network_weights"].values() if v.is_floating_point())
    assert "checkpoint_latest.pth (saved at the end of epoch 0)" in ran.output
    logs = sorted(fold.glob("training_log_*.txt"))
    assert logs and "Non-finite gradient" in logs[-1].read_text()
