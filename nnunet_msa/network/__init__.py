"""The MSA2 network: nnU-Net's planned encoder + MSConvBridge + MASAG + MSADecoder."""
from nnunet_msa.network.msa2_unet import MSA2UNet
from nnunet_msa.network.msa_decoder import MSADecoder
from nnunet_msa.network.bridged_unet_decoder import BridgedUNetDecoder

__all__ = ["MSA2UNet", "MSADecoder", "BridgedUNetDecoder"]
