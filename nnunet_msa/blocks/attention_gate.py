"""The additive attention gate of Attention U-Net (Oktay et al., MIDL 2018, eq. 1-2), as a skip gate.

    q   = ψ^T · ReLU(W_x^T x + W_g^T g + b_g) + b_ψ          (eq. 1, per voxel; W_x, W_g: C -> F_int, ψ: F_int -> 1)
    α   = σ(q)                                                (eq. 2, one coefficient per voxel)
    out = α · x

x is the encoder skip and g the gating signal. Oktay et al. take g from the coarser level and subsample x to it
with a strided W_x; here g is the decoder feature already upsampled to the skip's grid by nnU-Net's transposed
conv, so W_x and W_g are both 1x1 convs on the skip's grid and α needs no resampling (same equations).
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Type

import torch
from torch import nn
from torch.nn.modules.conv import _ConvNd


class AttentionGate(nn.Module):
    """(x: (B, C, *S), g: (B, C, *S)) -> (B, C, *S)."""

    def __init__(self, conv_op: Type[_ConvNd], channels: int, inter_channels: Optional[int] = None) -> None:
        super().__init__()
        f_int = inter_channels or max(channels // 2, 1)
        self.channels = channels
        self.w_x = conv_op(channels, f_int, 1, bias=False)
        self.w_g = conv_op(channels, f_int, 1, bias=True)    # its bias is b_g
        self.psi = conv_op(f_int, 1, 1, bias=True)           # its bias is b_ψ
        self.last_attention: Optional[torch.Tensor] = None

    def attention(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """α, (B, 1, *S)."""
        return torch.sigmoid(self.psi(torch.relu(self.w_x(x) + self.w_g(g))))

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return self.attention(x, g) * x

    def compute_conv_feature_map_size(self, input_size: Sequence[int]) -> int:
        """The intermediate map (F_int channels) and the gated skip, nnU-Net's planner unit."""
        n = math.prod(int(i) for i in input_size)
        return int((self.w_x.out_channels + self.channels) * n // 2)
