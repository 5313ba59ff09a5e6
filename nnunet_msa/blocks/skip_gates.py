"""The gates a network can put where MSA2 puts MASAG, by name (``MSA2UNet(skip_gate=...)``). Each takes the skip X
and the upsampled decoder feature G, both (B, C, *S), and returns the gated skip (B, C, *S), which the decoder
concatenates with G:

    "masag"           MSA2-Net's multi-scale adaptive spatial attention gate (``blocks/masag.py``)
    "caf"             FIAS's context-aware fusion (``blocks/caf_gate.py``)
    "attention_gate"  Attention U-Net's additive attention gate (``blocks/attention_gate.py``)
    "cbam"            CBAM, channel then spatial attention on X (``blocks/cbam.py``)
    "se"              squeeze-and-excitation on X (``blocks/squeeze_excitation.py``)
    "none"            X unchanged (nnU-Net's skip)
"""
from __future__ import annotations

from typing import Optional, Sequence, Type

from torch import nn
from torch.nn.modules.conv import _ConvNd

from nnunet_msa.blocks.attention_gate import AttentionGate
from nnunet_msa.blocks.caf_gate import ContextAwareFusion
from nnunet_msa.blocks.cbam import CBAM
from nnunet_msa.blocks.masag import MASAG
from nnunet_msa.blocks.squeeze_excitation import SqueezeExcitation

SKIP_GATES = ("masag", "caf", "attention_gate", "cbam", "se", "none")


def check_skip_gate(kind: str) -> str:
    if kind not in SKIP_GATES:
        raise ValueError(f"skip_gate must be one of {SKIP_GATES}, got {kind!r}.")
    return kind


def make_skip_gate(kind: str, conv_op: Type[_ConvNd], channels: int, kernel_size: Sequence[int],
                   norm_op: Optional[Type[nn.Module]] = None, norm_op_kwargs: Optional[dict] = None,
                   nonlin: Optional[Type[nn.Module]] = None, nonlin_kwargs: Optional[dict] = None,
                   identity_start: bool = False) -> nn.Module:
    """The gate ``kind`` for a skip of ``channels`` channels (``nn.Identity`` for "none"). ``identity_start``:
    MASAG starts as the identity on the skip (``MASAG``; the network's ``init="static"``)."""
    kind = check_skip_gate(kind)
    if kind == "masag":
        return MASAG(conv_op, channels, kernel_size, norm_op=norm_op, norm_op_kwargs=norm_op_kwargs, nonlin=nonlin,
                     nonlin_kwargs=nonlin_kwargs, conv_bias=True, identity_start=identity_start)
    if kind == "caf":
        return ContextAwareFusion(conv_op, channels, kernel_size)
    if kind == "attention_gate":
        return AttentionGate(conv_op, channels)
    if kind == "cbam":
        return CBAM(conv_op, channels, kernel_size)
    if kind == "se":
        return SqueezeExcitation(conv_op, channels)
    return nn.Identity()
