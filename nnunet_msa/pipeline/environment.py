"""The environment for running nnU-Net's commands on a workspace folder."""
from __future__ import annotations

import os
from typing import Dict, Optional

from nnunet_msa.cli.trainers_path import trainer_env


def nnunet_env(workspace: str, epochs: Optional[int] = None, iterations: Optional[int] = None,
               val_iterations: Optional[int] = None, extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """``os.environ`` plus nnUNet_raw/preprocessed/results under ``workspace``, ``nnUNet_extTrainer`` for our
    trainers, and the ``*_budget`` trainers' budget (``nnUNetMSA_epochs`` etc.) when given."""
    env = trainer_env()
    for var, sub in (("nnUNet_raw", "nnUNet_raw"), ("nnUNet_preprocessed", "nnUNet_preprocessed"),
                     ("nnUNet_results", "nnUNet_results")):
        env[var] = os.path.join(os.path.abspath(workspace), sub)
        os.makedirs(env[var], exist_ok=True)
    env.setdefault("nnUNet_n_proc_DA", "0")  # single-threaded augmentation: no worker start-up on small budgets
    env.setdefault("nnUNet_compile", "f")
    for name, value in (("nnUNetMSA_epochs", epochs), ("nnUNetMSA_iterations", iterations),
                        ("nnUNetMSA_val_iterations", val_iterations)):
        if value is not None:
            env[name] = str(int(value))
    env.update(extra or {})
    return env
