"""The ablations of the MSA2-Net paper's table (Table 6), each one switch off ``nnUNetTrainerMSA2``'s default
network (preset ``msa2``), everything else (plans, data, loss, schedule) unchanged; each a preset in ``plans/``:

    nnUNetTrainerMSA2_noBridge       skips go to the gates as they are (no MSConvBridge)
    nnUNetTrainerMSA2_noMASAG        skip and upsampled feature are concatenated without the gate
    nnUNetTrainerMSA2_noSACM         static convs of the planned kernel size in bridge and decoder
    nnUNetTrainerMSA2_bridgeOnly     nnU-Net's own UNetDecoder with the bridge on the skips
    nnUNetTrainerMSA2_noTempAnneal   SACM at temperature 1 from the first step
"""
from __future__ import annotations

from nnunet_msa.training.nnunet_trainer_msa2 import trainer_from_preset

nnUNetTrainerMSA2_noBridge = trainer_from_preset("msa2_noBridge", __name__)
nnUNetTrainerMSA2_noMASAG = trainer_from_preset("msa2_noMASAG", __name__)
nnUNetTrainerMSA2_noSACM = trainer_from_preset("msa2_noSACM", __name__)
nnUNetTrainerMSA2_bridgeOnly = trainer_from_preset("msa2_bridgeOnly", __name__)
nnUNetTrainerMSA2_noTempAnneal = trainer_from_preset("msa2_noTempAnneal", __name__)

ABLATION_TRAINERS = (nnUNetTrainerMSA2_noBridge, nnUNetTrainerMSA2_noMASAG, nnUNetTrainerMSA2_noSACM,
                     nnUNetTrainerMSA2_bridgeOnly, nnUNetTrainerMSA2_noTempAnneal)
