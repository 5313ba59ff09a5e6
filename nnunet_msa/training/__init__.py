"""nnU-Net trainer classes for MSA2 (found by nnU-Net through the thin modules in the repository's ``trainers/``).

``__all__`` lists every trainer nnU-Net finds there, in the order ``nnunet-msa trainers`` shows them: the default
and its product forms, the ablations, the other papers' architectures, the epoch and budget variants, then the
accuracy protocol's experiments (current names before former ones: the protocol's report names a network by the
first of its names here)."""
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
from nnunet_msa.training.hypothesis_trainers import EXPERIMENT_TRAINERS, FORMER_NAME_TRAINERS
from nnunet_msa.training.epoch_variants import EPOCH_TRAINERS, EPOCH_VARIANTS
from nnunet_msa.training.budget_trainers import (ABLATION_BUDGET_TRAINERS, ARCHITECTURE_BUDGET_TRAINERS,
                                                  EXPERIMENT_BUDGET_TRAINERS, FORMER_NAME_BUDGET_TRAINERS,
                                                  nnUNetTrainer_budget,
                                                  nnUNetTrainerMSA2_budget, nnUNetTrainerMSA2_fast_budget,
                                                  nnUNetTrainerMSA2Full_budget)

globals().update(EPOCH_TRAINERS)
globals().update(ABLATION_BUDGET_TRAINERS)
globals().update(ARCHITECTURE_BUDGET_TRAINERS)
globals().update(EXPERIMENT_BUDGET_TRAINERS)
globals().update(FORMER_NAME_BUDGET_TRAINERS)
globals().update({t.__name__: t for t in EXPERIMENT_TRAINERS + FORMER_NAME_TRAINERS})

#: the default and its product forms
PRODUCT_TRAINERS = (nnUNetTrainerMSA2, nnUNetTrainerMSA2_fast, nnUNetTrainerMSA2_lowMemory, nnUNetTrainerMSA2Full)

__all__ = ([t.__name__ for t in PRODUCT_TRAINERS]
           + [t.__name__ for t in ABLATION_TRAINERS]
           + [t.__name__ for t in ARCHITECTURE_TRAINERS]
           + sorted(EPOCH_TRAINERS, key=lambda n: int(n.split("_")[-1][:-len("epochs")]))
           + ["nnUNetTrainer_budget", "nnUNetTrainerMSA2_budget", "nnUNetTrainerMSA2_fast_budget",
              "nnUNetTrainerMSA2Full_budget"]
           + sorted(ABLATION_BUDGET_TRAINERS)
           + sorted(ARCHITECTURE_BUDGET_TRAINERS)
           + [t.__name__ for t in EXPERIMENT_TRAINERS]
           + list(EXPERIMENT_BUDGET_TRAINERS)
           + [t.__name__ for t in FORMER_NAME_TRAINERS]
           + list(FORMER_NAME_BUDGET_TRAINERS))
