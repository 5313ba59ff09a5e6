"""Folder for nnU-Net's ``nnUNet_extTrainer`` variable (``export nnUNet_extTrainer=$(nnunet-msa trainers-path)``).

nnU-Net imports every module here as a top-level module and drops it from ``sys.modules`` afterwards, so the
modules only re-export classes defined inside the ``nnunet_msa`` package. Installed as ``nnunet_msa.ext_trainers``.
"""
