"""nnunet-msa: MSA2-Net's adaptive modules (SACM, MSConvBridge, MASAG, MSADecoder) inside nnU-Net v2."""

__version__ = "0.3.1"
