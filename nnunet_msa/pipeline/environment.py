"""The environment for running nnU-Net's commands on a workspace folder."""
from __future__ import annotations

import os
import sys
from typing import Dict, Optional

from nnunet_msa.pipeline.trainers_path import trainer_env


def nnunet_env(workspace: str, epochs: Optional[int] = None, iterations: Optional[int] = None,
               val_iterations: Optional[int] = None, extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """``os.environ`` plus this interpreter's script folder first on PATH, nnUNet_raw/preprocessed/results under ``workspace``, ``nnUNet_extTrainer`` for our
    trainers, and the ``*_budget`` trainers' budget (``nnUNetMSA_epochs`` etc.) when given."""
    env = trainer_env()
    bin_dir = os.path.dirname(os.path.abspath(sys.executable))  # the nnUNetv2_* scripts of this environment
    if bin_dir not in env.get("PATH", "").split(os.pathsep):
        env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    for var, sub in (("nnUNet_raw", "nnUNet_raw"), ("nnUNet_preprocessed", "nnUNet_preprocessed"),
                     ("nnUNet_results", "nnUNet_results")):
        env[var] = os.path.join(os.path.abspath(workspace), sub)
        os.makedirs(env[var], exist_ok=True)
    # one augmentation worker: nnU-Net's planner calls torch.set_num_threads(nnUNet_n_proc_DA), so 0 breaks planning
    env.setdefault("nnUNet_n_proc_DA", "1")
    env.setdefault("nnUNet_compile", "f")
    # OpenMP's default busy-waiting stalls torch's threads when cores are shared (a 32->32 conv2d on 56x40 took
    # 50 ms instead of 0.9 ms here); passive waiting changes no result
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # nnU-Net's end-of-training validation otherwise starts pools of 8 workers, each importing torch
    env.setdefault("nnUNet_def_n_proc", "1")
    for name, value in (("nnUNetMSA_epochs", epochs), ("nnUNetMSA_iterations", iterations),
                        ("nnUNetMSA_val_iterations", val_iterations)):
        if value is not None:
            env[name] = str(int(value))
    env.update(extra or {})
    return env
