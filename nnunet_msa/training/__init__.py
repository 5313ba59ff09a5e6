"""nnU-Net trainer classes for MSA2 (found by nnU-Net through the thin modules in the repository's ``trainers/``)."""
from nnunet_msa.training.nnunet_trainer_msa2 import nnUNetTrainerMSA2
from nnunet_msa.training.budget_trainers import nnUNetTrainer_budget, nnUNetTrainerMSA2_budget

__all__ = ["nnUNetTrainerMSA2", "nnUNetTrainerMSA2_budget", "nnUNetTrainer_budget"]
