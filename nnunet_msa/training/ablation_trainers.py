"""The ablations of the MSA2-Net paper's table (Table 6), each one switch off ``nnUNetTrainerMSA2``'s default
network (``BALANCED_OPTIONS``), everything else (plans, data, loss, schedule) unchanged:

    nnUNetTrainerMSA2_noBridge       skips go to the gates as they are (no MSConvBridge)
    nnUNetTrainerMSA2_noMASAG        skip and upsampled feature are concatenated without the gate
    nnUNetTrainerMSA2_noSACM         static convs of the planned kernel size in bridge and decoder
    nnUNetTrainerMSA2_bridgeOnly     nnU-Net's own UNetDecoder with the bridge on the skips
    nnUNetTrainerMSA2_noTempAnneal   SACM at temperature 1 from the first step
"""
from __future__ import annotations

from typing import Any, ClassVar, Dict

from nnunet_msa.training.nnunet_trainer_msa2 import BALANCED_OPTIONS, nnUNetTrainerMSA2


class nnUNetTrainerMSA2_noBridge(nnUNetTrainerMSA2):
    """MSA2 without the MSConvBridge on the skips."""

    msa2_options: ClassVar[Dict[str, Any]] = {**BALANCED_OPTIONS, "use_bridge": False}


class nnUNetTrainerMSA2_noMASAG(nnUNetTrainerMSA2):
    """MSA2 without the MASAG gates (skip and upsampled feature concatenated as in nnU-Net)."""

    msa2_options: ClassVar[Dict[str, Any]] = {**BALANCED_OPTIONS, "use_masag": False}


class nnUNetTrainerMSA2_noSACM(nnUNetTrainerMSA2):
    """MSA2 with static convs of the planned kernel size wherever SACM would be (bridge and decoder)."""

    msa2_options: ClassVar[Dict[str, Any]] = {**BALANCED_OPTIONS, "use_sacm": False}


class nnUNetTrainerMSA2_bridgeOnly(nnUNetTrainerMSA2):
    """nnU-Net's UNetDecoder (static convs, no gates) with the MSConvBridge (SACM) on the skips."""

    msa2_options: ClassVar[Dict[str, Any]] = {**BALANCED_OPTIONS, "decoder": "nnunet", "use_masag": False}


class nnUNetTrainerMSA2_noTempAnneal(nnUNetTrainerMSA2):
    """MSA2 with the SACM temperature at 1 throughout (no annealing from tau0)."""

    anneal_temperature: ClassVar[bool] = False


ABLATION_TRAINERS = (nnUNetTrainerMSA2_noBridge, nnUNetTrainerMSA2_noMASAG, nnUNetTrainerMSA2_noSACM,
                     nnUNetTrainerMSA2_bridgeOnly, nnUNetTrainerMSA2_noTempAnneal)
