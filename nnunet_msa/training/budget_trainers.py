"""Short-budget trainers for CPU demos, tests and benchmarks: nnU-Net's default trainer and MSA2 on the same
budget, read from the environment so the real ``nnUNetv2_train`` command can run them:

    nnUNetMSA_epochs (default 1), nnUNetMSA_iterations (iterations per epoch, default 2),
    nnUNetMSA_val_iterations (default 1), nnUNetMSA_save_every (epochs between checkpoint_latest.pth saves,
    default nnU-Net's 50), nnUNetMSA_anneal_fraction (MSA2: fraction of all iterations over which the SACM
    temperature anneals, default the trainer's 0.1), nnUNetMSA_validation (nnU-Net's end-of-training validation:
    ``full``, the default, as nnU-Net runs it; ``no_mirroring``, the same without test-time mirroring, 4x (2D) or 8x
    (3D) fewer forward passes; ``off``, none: for timing runs and tests whose subject is not the validation).

Every ablation, architecture and experiment trainer has one too (``nnUNetTrainerMSA2_noBridge_budget``,
``nnUNetTrainerFIAS_budget``, ``nnUNetTrainerMSA2_fast_budget``, ..., generated), for the comparison benchmark
(``python -m benchmarks.ablation``) and the accuracy protocol (``python -m benchmarks.protocol``).
"""
from __future__ import annotations

import os
from typing import Dict, Iterable

import torch

from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunet_msa.training.ablation_trainers import ABLATION_TRAINERS
from nnunet_msa.training.architecture_trainers import ARCHITECTURE_TRAINERS
from nnunet_msa.training.hypothesis_trainers import EXPERIMENT_TRAINERS, FORMER_NAME_TRAINERS
from nnunet_msa.training.nnunet_trainer_msa2 import nnUNetTrainerMSA2, nnUNetTrainerMSA2Full, nnUNetTrainerMSA2_fast
from nnunet_msa.training.seeding import SeedFromEnvironmentMixin
from nnunet_msa.training.trainer_subclass import trainer_subclass


VALIDATION_MODES = ("full", "no_mirroring", "off")


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value.strip() else default
    except ValueError as e:
        raise ValueError(f"{name}={value!r} must be a whole number") from e


class _BudgetMixin:
    """Sets epochs and iterations from the environment after nnU-Net's ``__init__``; writes checkpoints whole or
    not at all, so a run stopped while saving still has its previous checkpoint to resume from (``--c``)."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = _env_int("nnUNetMSA_epochs", 1)
        self.num_iterations_per_epoch = _env_int("nnUNetMSA_iterations", 2)
        self.num_val_iterations_per_epoch = _env_int("nnUNetMSA_val_iterations", 1)
        self.save_every = _env_int("nnUNetMSA_save_every", self.save_every)
        fraction = os.environ.get("nnUNetMSA_anneal_fraction", "").strip()
        if fraction:
            try:
                self.anneal_fraction = float(fraction)
            except ValueError as e:
                raise ValueError(f"nnUNetMSA_anneal_fraction={fraction!r} must be a number in (0, 1]") from e

    def perform_actual_validation(self, save_probabilities: bool = False) -> None:
        """nnU-Net's validation as ``$nnUNetMSA_validation`` asks (``VALIDATION_MODES``). ``no_mirroring`` clears
        the mirroring axes only while it runs: the checkpoints, written before, keep them for ``nnUNetv2_predict``."""
        mode = os.environ.get("nnUNetMSA_validation", "").strip() or "full"
        if mode not in VALIDATION_MODES:
            raise ValueError(f"nnUNetMSA_validation={mode!r}: use one of {', '.join(VALIDATION_MODES)}")
        if mode == "off":
            self.print_to_log_file("nnUNetMSA_validation=off: the end-of-training validation is skipped")
            return
        axes = self.inference_allowed_mirroring_axes
        if mode == "no_mirroring":
            self.print_to_log_file("nnUNetMSA_validation=no_mirroring: validating without test-time mirroring")
            self.inference_allowed_mirroring_axes = None
        try:
            super().perform_actual_validation(save_probabilities)
        finally:
            self.inference_allowed_mirroring_axes = axes

    def save_checkpoint(self, filename: str) -> None:
        """nnU-Net's checkpoint, written beside ``filename`` and then renamed onto it (atomic on one file system)."""
        partial = filename + ".part"
        super().save_checkpoint(partial)
        if os.path.isfile(partial):  # nnU-Net saves on rank 0 only, and not with --disable_checkpointing
            os.replace(partial, filename)


class nnUNetTrainer_budget(_BudgetMixin, SeedFromEnvironmentMixin, nnUNetTrainer):
    """nnU-Net's default trainer (its network, loss and schedule unchanged) on the environment's budget, seeded by
    ``$nnUNetMSA_seed`` like the MSA2 trainers: the baseline of demos, benchmarks and the accuracy protocol."""


class nnUNetTrainerMSA2_budget(_BudgetMixin, nnUNetTrainerMSA2):
    """nnUNetTrainerMSA2 on the environment's budget."""


class nnUNetTrainerMSA2Full_budget(_BudgetMixin, nnUNetTrainerMSA2Full):
    """nnUNetTrainerMSA2Full on the environment's budget."""


def make_budget_variant(base: type, module: str = __name__) -> type:
    """``{base.__name__}_budget``: ``base`` on the environment's budget."""
    name = f"{base.__name__}_budget"
    return trainer_subclass(name, (_BudgetMixin, base), module, f"{base.__name__} on the environment's budget.")


def _budget_variants(bases: Iterable[type]) -> Dict[str, type]:
    """{name: class} of the budget variants of ``bases``, bound to this module's attributes."""
    out: Dict[str, type] = {}
    for base in bases:
        cls = make_budget_variant(base)
        out[cls.__name__] = cls
        globals()[cls.__name__] = cls
    return out


nnUNetTrainerMSA2_fast_budget = make_budget_variant(nnUNetTrainerMSA2_fast)
ABLATION_BUDGET_TRAINERS = _budget_variants(ABLATION_TRAINERS)
ARCHITECTURE_BUDGET_TRAINERS = _budget_variants(ARCHITECTURE_TRAINERS)
#: the experiments' budget variants (the protocol trains these)
EXPERIMENT_BUDGET_TRAINERS = _budget_variants(EXPERIMENT_TRAINERS)
FORMER_NAME_BUDGET_TRAINERS = _budget_variants(FORMER_NAME_TRAINERS)
