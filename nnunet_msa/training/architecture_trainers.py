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

Your own combination: a subclass with ``msa2_options`` (see ``make_architecture_trainer``), in a module of a folder
on ``nnUNet_extTrainer``; or the same keys in a plans configuration's ``architecture.arch_kwargs`` with
``network_class_name`` ``nnunet_msa.network.msa2_unet.MSA2UNet``.
"""
from __future__ import annotations

from typing import Any, ClassVar, Dict

from nnunet_msa.training.nnunet_trainer_msa2 import BALANCED_OPTIONS, nnUNetTrainerMSA2

#: nnU-Net's own decoder layout: no bridge, static convs, the gate in every stage
_STATIC = {"use_bridge": False, "multiscale_conv": "static", "masag_stages": None, "recompute": False}


class _NoSACMTrainer(nnUNetTrainerMSA2):
    """Base of the trainers without SACM: no temperature to anneal."""

    anneal_temperature: ClassVar[bool] = False


class nnUNetTrainerFIAS(_NoSACMTrainer):
    """FIAS's DMK (eq. 1-2) wherever MSA2 has SACM (skip bridge, decoder convs) and its CAF (eq. 3-6) fusing the
    DMK-cleaned skip (FIAS's local branch) with the upsampled decoder feature, in MASAG's place."""

    msa2_options: ClassVar[Dict[str, Any]] = {**BALANCED_OPTIONS, "multiscale_conv": "dmk", "skip_gate": "caf"}


class nnUNetTrainerQTSeg(_NoSACMTrainer):
    """QTSeg's MLFD (eq. 5-7, over all encoder levels) and dual-mix attention decoder (eq. 1-4, per-class query
    tokens, masks as token-feature dot products); static convs, no gate, no bridge; DMA blocks recomputed in
    backward (3D memory)."""

    msa2_options: ClassVar[Dict[str, Any]] = {**_STATIC, "skip_gate": "none", "skip_redistribution": "mlfd",
                                              "decoder": "qtseg", "recompute": True}


class nnUNetTrainerAttnGate(_NoSACMTrainer):
    """Attention U-Net: the additive attention gate on every skip, gated by the upsampled decoder feature."""

    msa2_options: ClassVar[Dict[str, Any]] = {**_STATIC, "skip_gate": "attention_gate"}


class nnUNetTrainerCBAM(_NoSACMTrainer):
    """CBAM (channel, then spatial attention) on every skip."""

    msa2_options: ClassVar[Dict[str, Any]] = {**_STATIC, "skip_gate": "cbam"}


class nnUNetTrainerSE(_NoSACMTrainer):
    """Squeeze-and-excitation on every skip."""

    msa2_options: ClassVar[Dict[str, Any]] = {**_STATIC, "skip_gate": "se"}


class nnUNetTrainerSelectiveKernel(_NoSACMTrainer):
    """``nnUNetTrainerMSA2``'s network with selective-kernel convs in SACM's place (bridge and decoder)."""

    msa2_options: ClassVar[Dict[str, Any]] = {**BALANCED_OPTIONS, "multiscale_conv": "selective_kernel"}


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
    return type(name, (base,), {"msa2_options": {**base.msa2_options, **options}, "__module__": module,
                                "__qualname__": name, "__doc__": f"MSA2UNet with {options}."})
