"""Re-exports nnunet-msa's trainer classes for nnU-Net's ``nnUNet_extTrainer`` lookup (no code of its own)."""
from nnunet_msa.training import *  # noqa: F401,F403
from nnunet_msa.training import __all__  # noqa: F401
