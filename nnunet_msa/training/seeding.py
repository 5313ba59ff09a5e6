"""Reproducible runs: ``nnUNetMSA_seed=N nnUNetv2_train ...`` seeds Python, NumPy and torch before the network is
built, so the same seed gives the same initial weights, the same patches and augmentations, and the same first
losses.

nnU-Net itself does not seed. What the seed cannot fix: nnU-Net's default background augmentation
(``nnUNet_n_proc_DA`` > 0) hands batches from several worker processes in whatever order they finish; set
``nnUNet_n_proc_DA=0`` for a bit-reproducible batch order. On CUDA the seed also switches cuDNN to deterministic
algorithms (slower). Under DDP rank r uses seed N + r (its own patches; DDP copies rank 0's weights to every rank).
"""
from __future__ import annotations

import os
import random
from typing import Optional

import numpy as np
import torch

SEED_ENV = "nnUNetMSA_seed"


def seed_from_environment() -> Optional[int]:
    """The seed in ``$nnUNetMSA_seed``, or None when unset; a clear error when it is not a whole number."""
    value = os.environ.get(SEED_ENV, "").strip()
    if not value:
        return None
    try:
        return int(value)
    except ValueError as e:
        raise ValueError(f"{SEED_ENV}={value!r} must be a whole number (or unset for nnU-Net's unseeded runs)") from e


def seed_everything(seed: int) -> None:
    """Seed ``random``, NumPy's global generator and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class SeedFromEnvironmentMixin:
    """Mixin for an ``nnUNetTrainer``: seeds everything in ``initialize`` when ``$nnUNetMSA_seed`` is set."""

    def initialize(self) -> None:
        seed = seed_from_environment()
        if seed is not None and not self.was_initialized:
            seed_everything(seed + self.local_rank)
            if torch.backends.cudnn.is_available():
                torch.backends.cudnn.benchmark = False
                torch.backends.cudnn.deterministic = True
            self.print_to_log_file(f"{SEED_ENV}={seed}: seeded random, numpy and torch with {seed + self.local_rank}")
        super().initialize()
