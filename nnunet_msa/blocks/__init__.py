"""Dimension-generic building blocks (2D and 3D), taking ``conv_op`` like dynamic_network_architectures."""
from nnunet_msa.blocks.multiscale_conv import MultiScaleConvConfig
from nnunet_msa.blocks.sacm import SACM
from nnunet_msa.blocks.adaptive_conv_block import AdaptiveConvNormAct
from nnunet_msa.blocks.ms_conv_bridge import MSConvBridge
from nnunet_msa.blocks.masag import MASAG
from nnunet_msa.blocks.observe import observe_attention

__all__ = ["SACM", "MultiScaleConvConfig", "AdaptiveConvNormAct", "MSConvBridge", "MASAG", "observe_attention"]
