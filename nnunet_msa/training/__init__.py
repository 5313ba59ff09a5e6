"""nnU-Net trainer classes for MSA2 (found by nnU-Net through the thin modules in the repository's ``trainers/``)."""
from nnunet_msa.training.nnunet_trainer_msa2 import (DEFAULT_OPTIONS, nnUNetTrainerMSA2, nnUNetTrainerMSA2Full,
                                                     nnUNetTrainerMSA2_fast, nnUNetTrainerMSA2_lowMemory,
                                                     nnUNetTrainerMSA2_v1,
                                                     trainer_from_preset)
from nnunet_msa.training.ablation_trainers import (ABLATION_TRAINERS, nnUNetTrainerMSA2_bridgeOnly,
                                                    nnUNetTrainerMSA2_noBridge, nnUNetTrainerMSA2_noMASAG,
                                                    nnUNetTrainerMSA2_noSACM, nnUNetTrainerMSA2_noTempAnneal)
from nnunet_msa.training.architecture_trainers import (ARCHITECTURE_TRAINERS, make_architecture_trainer,
                                                       nnUNetTrainerAttnGate, nnUNetTrainerCBAM, nnUNetTrainerFIAS,
                                                       nnUNetTrainerQTSeg, nnUNetTrainerSE,
                                                       nnUNetTrainerSelectiveKernel)
from nnunet_msa.training.hypothesis_trainers import HYPOTHESIS_TRAINERS
from nnunet_msa.training.epoch_variants import EPOCH_TRAINERS, EPOCH_VARIANTS
from nnunet_msa.training.budget_trainers import (ABLATION_BUDGET_TRAINERS, ARCHITECTURE_BUDGET_TRAINERS,
                                                  nnUNetTrainer_budget,
                                                  nnUNetTrainerMSA2_budget, nnUNetTrainerMSA2Full_budget)

globals().update(EPOCH_TRAINERS)
globals().update(ABLATION_BUDGET_TRAINERS)
globals().update(ARCHITECTURE_BUDGET_TRAINERS)
globals().update({t.__name__: t for t in HYPOTHESIS_TRAINERS})

__all__ = (["nnUNetTrainerMSA2", "nnUNetTrainerMSA2Full", "nnUNetTrainerMSA2_budget", "nnUNetTrainerMSA2Full_budget",
            "nnUNetTrainer_budget", "nnUNetTrainerMSA2_lowMemory"]
           + [t.__name__ for t in ABLATION_TRAINERS]
           + sorted(EPOCH_TRAINERS, key=lambda n: int(n.split("_")[-1][:-len("epochs")]))
           + sorted(ABLATION_BUDGET_TRAINERS)
           + [t.__name__ for t in ARCHITECTURE_TRAINERS]
           + [t.__name__ for t in HYPOTHESIS_TRAINERS]
           + sorted(ARCHITECTURE_BUDGET_TRAINERS))
