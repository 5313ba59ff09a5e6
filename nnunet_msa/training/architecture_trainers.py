"""The other papers' architectures as nnU-Net trainers: each puts their parts into the MSA2 network's slots
(``MSA2UNet``'s ``skip_gate``, ``multiscale_conv``, ``skip_redistribution``, ``decoder``) on nnU-Net's planned
encoder, with everything else (plans, data, augmentation, loss, deep supervision, schedule) nnU-Net's:

    nnUNetTrainerFIAS            FIAS: DMK convs in the skip bridge and the decoder, CAF fusing skip and decoder
    nnUNetTrainerQTSeg           QTSeg: MLFD over the encoder outputs, dual-mix attention decoder with class tokens
    nnUNetTrainerAttnGate        Attention U-Net: additive attention gates on every skip, static convs
    nnUNetTrainerCBAM            CBAM on every skip, static convs
    nnUNetTrainerSE              squeeze-and-excitation on every skip, static convs
    nnUNetTrainerSelectiveKernel MSA2 with selective-kernel convs in SACM's place (bridge, MASAG kept)

The papers' transformer encoders (MaxViT, CSWin, DilateFormer) are not used: they need pretrained 2D weights and do
not follow nnU-Net's 2D/3D planning, so every trainer here keeps nnU-Net's planned encoder.

Each is a preset in ``plans/`` (``fias.json``, ``qtseg.json``, ...). Your own combination: a subclass with
``msa2_options`` (see ``make_architecture_trainer``) in a module of a folder on ``nnUNet_extTrainer``; or the same keys in a plans configuration's ``architecture.arch_kwargs`` with
``network_class_name`` ``nnunet_msa.network.msa2_unet.MSA2UNet``.
"""
from __future__ import annotations

from typing import Any

from nnunet_msa.training.nnunet_trainer_msa2 import nnUNetTrainerMSA2, trainer_from_preset
from nnunet_msa.training.trainer_subclass import trainer_subclass

nnUNetTrainerFIAS = trainer_from_preset("fias", __name__)
nnUNetTrainerQTSeg = trainer_from_preset("qtseg", __name__)
nnUNetTrainerAttnGate = trainer_from_preset("attention_gate", __name__)
nnUNetTrainerCBAM = trainer_from_preset("cbam", __name__)
nnUNetTrainerSE = trainer_from_preset("se", __name__)
nnUNetTrainerSelectiveKernel = trainer_from_preset("selective_kernel", __name__)

ARCHITECTURE_TRAINERS = (nnUNetTrainerFIAS, nnUNetTrainerQTSeg, nnUNetTrainerAttnGate, nnUNetTrainerCBAM,
                         nnUNetTrainerSE, nnUNetTrainerSelectiveKernel)


def make_architecture_trainer(name: str, module: str, base: type = nnUNetTrainerMSA2, **options: Any) -> type:
    """A trainer class ``name`` whose network is ``MSA2UNet`` with ``options`` (keys of ``MSA2UNet``), e.g. in a
    module of your ``nnUNet_extTrainer`` folder::

        nnUNetTrainerCBAM_SK = make_architecture_trainer("nnUNetTrainerCBAM_SK", __name__, skip_gate="cbam",
                                                         multiscale_conv="selective_kernel")

    Bind it to a module attribute of the same name so nnU-Net's lookup (training, prediction) finds it."""
    from nnunet_msa.training.network_from_plans import check_msa2_options

    check_msa2_options(options)
    return trainer_subclass(name, (base,), module, f"MSA2UNet with {options}.",
                            msa2_options={**base.msa2_options, **options})
