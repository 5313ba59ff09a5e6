"""Edit nnU-Net plans and splits the way nnU-Net documents it (``inherits_from`` configurations, a
``splits_final.json``), for small CPU budgets that keep the planned network."""
from __future__ import annotations

import json
import os
from typing import List, Sequence


def plans_path(preprocessed_dataset_dir: str, plans_name: str = "nnUNetPlans") -> str:
    return os.path.join(preprocessed_dataset_dir, f"{plans_name}.json")


def add_inherited_configuration(preprocessed_dataset_dir: str, base: str, name: str, batch_size: int,
                                plans_name: str = "nnUNetPlans") -> str:
    """Add configuration ``name`` that inherits ``base`` (same network, patch and preprocessed data) with another
    batch size; returns ``name``. Idempotent."""
    path = plans_path(preprocessed_dataset_dir, plans_name)
    with open(path) as f:
        plans = json.load(f)
    if base not in plans["configurations"]:
        raise KeyError(f"configuration {base!r} is not in {path}; it has {sorted(plans['configurations'])}")
    plans["configurations"][name] = {"inherits_from": base, "batch_size": int(batch_size)}
    with open(path, "w") as f:
        json.dump(plans, f, indent=4)
    return name


def write_split(preprocessed_dataset_dir: str, train: Sequence[str], val: Sequence[str], n_folds: int = 5) -> str:
    """Write ``splits_final.json`` whose every fold trains on ``train`` and validates on ``val``."""
    if set(train) & set(val):
        raise ValueError("train and validation cases overlap")
    path = os.path.join(preprocessed_dataset_dir, "splits_final.json")
    with open(path, "w") as f:
        json.dump([{"train": list(train), "val": list(val)} for _ in range(n_folds)], f, indent=2)
    return path


def case_ids(raw_dataset_dir: str) -> List[str]:
    """Case identifiers of ``labelsTr`` in an nnU-Net raw dataset, sorted."""
    with open(os.path.join(raw_dataset_dir, "dataset.json")) as f:
        ending = json.load(f)["file_ending"]
    return sorted(f[: -len(ending)] for f in os.listdir(os.path.join(raw_dataset_dir, "labelsTr"))
                  if f.endswith(ending))
