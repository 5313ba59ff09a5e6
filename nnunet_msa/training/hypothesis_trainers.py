"""The accuracy hypotheses of the input-fingerprint SACM (``python -m benchmarks.protocol``), each a preset in
``plans/`` (``msa2_input*.json``, ``msa2_responsesStatic.json``) differing from ``msa2_inputStatic`` in one option:
the static start against He init, the input fingerprint against the responses fingerprint, MASAG in the lowest
decoder stage only, no temperature annealing, SACM on the planned dense kernel (``dilated``) instead of
``separable``, the light placement (bridge and MASAG in the lowest stage only, the full-resolution stage nnU-Net's), and the
default (light, He init) with dense dilated candidates (``msa2_inputHeLightDilated``), with one dense kernel at K dilations
(``msa2_inputHeLightShared``: the dilated candidates' receptive fields with a static conv's parameters; without
annealing: ``msa2_inputHeLightSharedNoAnneal``), or with
SACM in the lowest decoder stage only (``msa2_lowestStage``); and the default with candidates that split the input
channels between the dilations (``msa2_split``: one static conv's FLOPs)."""
from __future__ import annotations

from nnunet_msa.training.nnunet_trainer_msa2 import nnUNetTrainerMSA2_fast, nnUNetTrainerMSA2_v1, trainer_from_preset

HYPOTHESIS_PRESETS = ("msa2_inputStatic", "msa2_inputHe", "msa2_responsesStatic", "msa2_inputStaticMasag1",
                      "msa2_inputStaticNoAnneal", "msa2_inputStaticDilated", "msa2_inputStaticLight",
                      "msa2_inputHeLight", "msa2_inputHeLightNoAnneal", "msa2_inputHeLightDilated",
                      "msa2_inputHeLightShared", "msa2_inputHeLightSharedNoAnneal", "msa2_lowestStage", "msa2_split")
HYPOTHESIS_TRAINERS = (nnUNetTrainerMSA2_v1, nnUNetTrainerMSA2_fast) + tuple(trainer_from_preset(p, __name__)
                                                                             for p in HYPOTHESIS_PRESETS)
globals().update({t.__name__: t for t in HYPOTHESIS_TRAINERS[2:]})
