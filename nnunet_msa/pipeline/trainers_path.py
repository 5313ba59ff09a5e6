"""Where the trainer modules for ``nnUNet_extTrainer`` live, in an editable checkout or an installed wheel."""
from __future__ import annotations

import importlib.util
import os


def trainers_path() -> str:
    """Absolute path of the folder to put in ``nnUNet_extTrainer`` (the package ``nnunet_msa.ext_trainers``)."""
    spec = importlib.util.find_spec("nnunet_msa.ext_trainers")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("nnunet_msa.ext_trainers is missing: reinstall nnunet-msa (pip install nnunet-msa).")
    return os.path.abspath(list(spec.submodule_search_locations)[0])


def trainer_env() -> dict:
    """The environment with ``nnUNet_extTrainer`` pointing at our trainers (other entries kept)."""
    env = dict(os.environ)
    path = trainers_path()
    current = [p for p in env.get("nnUNet_extTrainer", "").split(os.pathsep) if p.strip()]
    if path not in current:
        current.insert(0, path)
    env["nnUNet_extTrainer"] = os.pathsep.join(current)
    return env
