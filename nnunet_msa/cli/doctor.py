"""``nnunet-msa doctor``: checks what nnU-Net needs to find and run the MSA2 trainers, and says what to fix."""
from __future__ import annotations

import os
import subprocess
import sys
from typing import List, Tuple

from nnunet_msa.cli.trainers_path import trainers_path

TRAINER = "nnUNetTrainerMSA2"


def _check_trainer_lookup() -> Tuple[bool, str]:
    """Ask nnU-Net itself, in a fresh process with the current environment, to find the trainer."""
    code = ("from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name as f;"
            f"c = f({TRAINER!r}); print(c.__module__)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if proc.returncode == 0:
        return True, f"nnU-Net finds {TRAINER} ({proc.stdout.strip().splitlines()[-1]})"
    return False, (proc.stderr.strip().splitlines() or ["unknown error"])[-1]


def run_doctor() -> int:
    """Print a checklist; return 0 when everything needed for training is in place, else 1."""
    problems: List[str] = []
    import nnunetv2
    import torch
    from importlib.metadata import version

    import nnunet_msa
    print(f"python {sys.version.split()[0]}, torch {torch.__version__} (cuda available: "
          f"{torch.cuda.is_available()}), nnunetv2 {version('nnunetv2')}, dynamic-network-architectures "
          f"{version('dynamic_network_architectures')}, nnunet-msa {nnunet_msa.__version__}")
    path = trainers_path()
    ext = os.environ.get("nnUNet_extTrainer", "")
    entries = [os.path.abspath(p) for p in ext.split(os.pathsep) if p.strip()]
    if not ext:
        problems.append(f"nnUNet_extTrainer is not set, so nnUNetv2_train and nnUNetv2_predict cannot find "
                        f"{TRAINER}. Fix: export nnUNet_extTrainer=$(nnunet-msa trainers-path)")
    elif path not in entries:
        problems.append(f"nnUNet_extTrainer={ext!r} does not contain {path}, so nnU-Net cannot find {TRAINER}. "
                        f"Fix: export nnUNet_extTrainer=$(nnunet-msa trainers-path)")
    else:
        ok, message = _check_trainer_lookup()
        print(("ok    " if ok else "FAIL  ") + message)
        if not ok:
            problems.append(f"nnU-Net could not import {TRAINER} from {path}: {message}")
    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        value = os.environ.get(var)
        if not value:
            problems.append(f"{var} is not set; nnU-Net needs it. Fix: export {var}=/path/to/{var}")
        elif not os.path.isdir(value):
            problems.append(f"{var}={value} does not exist. Fix: mkdir -p {value}")
        else:
            print(f"ok    {var}={value}")
    if problems:
        for p in problems:
            print("FIX   " + p)
        return 1
    print(f"ok    nnU-Net is ready for -tr {TRAINER} (nnunetv2 at {nnunetv2.__path__[0]})")
    return 0
