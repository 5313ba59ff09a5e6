"""CBAM, convolutional block attention module (Woo et al., ECCV 2018, eq. 1-3), as a skip gate.

    M_c = σ(W1·ReLU(W0·avg_S(X)) + W1·ReLU(W0·max_S(X)))      (channel attention, eq. 2; shared MLP, C -> C/r -> C)
    X'  = M_c ⊙ X                                             (eq. 1)
    M_s = σ(f^{7×7}([mean_c(X'); max_c(X')]))                 (spatial attention, eq. 3; 7 per convolved axis)
    out = M_s ⊙ X'                                            (eq. 1)

Channel then spatial attention on the skip X; the decoder feature G is not used.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Type, Union

import torch
from torch import nn
from torch.nn.modules.conv import _ConvNd

from nnunet_msa.blocks.geometry import same_padding, widen_kernel
from nnunet_msa.blocks.geometry import as_per_axis, conv_dim


class CBAM(nn.Module):
    """(X: (B, C, *S), G ignored) -> (B, C, *S)."""

    def __init__(self, conv_op: Type[_ConvNd], channels: int, kernel_size: Union[int, Sequence[int]] = 3,
                 reduction: int = 16, spatial_kernel: int = 7) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.channels = channels
        self.w0 = conv_op(channels, hidden, 1, bias=False)
        self.w1 = conv_op(hidden, channels, 1, bias=False)
        k = widen_kernel(as_per_axis(kernel_size, conv_dim(conv_op), "kernel_size"), spatial_kernel)
        self.spatial = conv_op(2, 1, k, padding=same_padding(k), bias=False)

    def channel_attention(self, x: torch.Tensor) -> torch.Tensor:
        """M_c, (B, C, 1, ...), eq. 2."""
        dims = tuple(range(2, x.dim()))
        mlp = lambda v: self.w1(torch.relu(self.w0(v)))  # noqa: E731
        return torch.sigmoid(mlp(x.mean(dim=dims, keepdim=True)) + mlp(x.amax(dim=dims, keepdim=True)))

    def spatial_attention(self, x: torch.Tensor) -> torch.Tensor:
        """M_s, (B, 1, *S), eq. 3."""
        return torch.sigmoid(self.spatial(torch.cat((x.mean(1, keepdim=True), x.amax(1, keepdim=True)), dim=1)))

    def forward(self, x: torch.Tensor, g: Optional[torch.Tensor] = None) -> torch.Tensor:
        x = self.channel_attention(x) * x
        return self.spatial_attention(x) * x

    def compute_conv_feature_map_size(self, input_size: Sequence[int]) -> int:
        """X' and the output (two maps, one unit) plus the 2-channel pooled map."""
        n = math.prod(int(i) for i in input_size)
        return int(self.channels * n + n)
