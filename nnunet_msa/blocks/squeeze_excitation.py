"""Squeeze-and-excitation (Hu et al., CVPR 2018, eq. 2-4) as a skip gate.

    z = mean_S(X)                          (squeeze, eq. 2: (B, C))
    s = σ(W2 · ReLU(W1 · z))               (excitation, eq. 3: W1 ∈ R^{C/r × C}, W2 ∈ R^{C × C/r})
    out = s ⊙ X                            (scale, eq. 4)

The gate recalibrates the skip X's channels; the decoder feature G is not used (the gate's interface takes it).
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Type

import torch
from torch import nn
from torch.nn.modules.conv import _ConvNd


class SqueezeExcitation(nn.Module):
    """(X: (B, C, *S), G ignored) -> (B, C, *S)."""

    def __init__(self, conv_op: Type[_ConvNd], channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.channels = channels
        self.fc1 = conv_op(channels, hidden, 1, bias=False)   # W1 (a 1x1 conv on the pooled vector)
        self.fc2 = conv_op(hidden, channels, 1, bias=False)   # W2

    def forward(self, x: torch.Tensor, g: Optional[torch.Tensor] = None) -> torch.Tensor:
        z = x.mean(dim=tuple(range(2, x.dim())), keepdim=True)
        s = torch.sigmoid(self.fc2(torch.relu(self.fc1(z))))
        return s * x

    def compute_conv_feature_map_size(self, input_size: Sequence[int]) -> int:
        """The scaled skip (one map), nnU-Net's planner unit."""
        return int(self.channels * math.prod(int(i) for i in input_size))
