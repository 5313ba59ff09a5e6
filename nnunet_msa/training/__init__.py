"""nnU-Net trainer classes for MSA2 (found by nnU-Net through the thin modules in the repository's ``trainers/``)."""
from nnunet_msa.training.nnunet_trainer_msa2 import BALANCED_OPTIONS, nnUNetTrainerMSA2, nnUNetTrainerMSA2Full
from nnunet_msa.training.budget_trainers import (nnUNetTrainer_budget, nnUNetTrainerMSA2_budget,
                                                  nnUNetTrainerMSA2Full_budget)

__all__ = ["nnUNetTrainerMSA2", "nnUNetTrainerMSA2Full", "nnUNetTrainerMSA2_budget", "nnUNetTrainerMSA2Full_budget",
           "nnUNetTrainer_budget"]
