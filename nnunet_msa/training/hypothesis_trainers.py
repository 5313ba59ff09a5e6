"""The accuracy hypotheses of the input-fingerprint SACM (``python -m benchmarks.protocol``), each a trainer whose
network differs from ``INPUT_STATIC`` in one option: the static start against He init, the input fingerprint
against the responses fingerprint, MASAG in the lowest decoder stage only, no temperature annealing, SACM on the
planned dense kernel (``dilated``) instead of ``separable``."""
from __future__ import annotations

from typing import Any, Dict

from nnunet_msa.training.architecture_trainers import make_architecture_trainer
from nnunet_msa.training.nnunet_trainer_msa2 import BALANCED_OPTIONS, nnUNetTrainerMSA2

#: input fingerprint, kernel form, static start, the balanced placement, no recomputation
INPUT_STATIC: Dict[str, Any] = {**BALANCED_OPTIONS, "sacm_fingerprint": "input", "init": "static",
                                "recompute": False}

nnUNetTrainerMSA2_inputStatic = make_architecture_trainer("nnUNetTrainerMSA2_inputStatic", __name__,
                                                          **INPUT_STATIC)
nnUNetTrainerMSA2_inputHe = make_architecture_trainer("nnUNetTrainerMSA2_inputHe", __name__,
                                                      **{**INPUT_STATIC, "init": "he"})
nnUNetTrainerMSA2_responsesStatic = make_architecture_trainer("nnUNetTrainerMSA2_responsesStatic", __name__,
                                                              **{**INPUT_STATIC, "sacm_fingerprint": "responses"})
nnUNetTrainerMSA2_inputStaticMasag1 = make_architecture_trainer("nnUNetTrainerMSA2_inputStaticMasag1", __name__,
                                                                **{**INPUT_STATIC, "masag_stages": 1})
nnUNetTrainerMSA2_inputStaticDilated = make_architecture_trainer(
    "nnUNetTrainerMSA2_inputStaticDilated", __name__, **{**INPUT_STATIC, "sacm_realization": "dilated"})


class nnUNetTrainerMSA2_inputStaticNoAnneal(nnUNetTrainerMSA2_inputStatic):
    """``nnUNetTrainerMSA2_inputStatic`` at SACM temperature 1 throughout."""

    anneal_temperature = False


HYPOTHESIS_TRAINERS = (nnUNetTrainerMSA2_inputStatic, nnUNetTrainerMSA2_inputHe, nnUNetTrainerMSA2_responsesStatic,
                       nnUNetTrainerMSA2_inputStaticMasag1, nnUNetTrainerMSA2_inputStaticNoAnneal,
                       nnUNetTrainerMSA2_inputStaticDilated)
