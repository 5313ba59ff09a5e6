"""FIAS's context-aware fusion (CAF; Liu et al., "FIAS", Sec. 2.2, eq. 3-6), as a skip gate.

FIAS fuses a local (DMK) and a global (transformer) feature of one stage. Here F1 is the encoder skip (after the
bridge, which is DMK in ``nnUNetTrainerFIAS``) and F2 the decoder feature upsampled to the skip's grid:

    w_ch = σ(Conv1x1(Cat(P_avg(Conv1x1([F1; F2])), P_max(Conv1x1([F1; F2])))))     (eq. 3: (B, 2C, 1, ...))
    F'   = Conv1x1(w_ch ⊗ [F1; F2])                                                (eq. 4: 2C -> C)
    w_sp = σ(Conv_k(mean_c(Conv1x1(F1) ⊕ Conv1x1(F2))))                             (eq. 5: (B, 1, *S))
    F̂    = w_sp ⊗ F'                                                               (eq. 6: (B, C, *S))

P_avg / P_max in eq. 3 pool over space (channel weights); P_avg in eq. 5 pools over channels (a spatial map, which
w_sp must be to "emphasise salient spatial regions"). Conv_k has the planned kernel size. The convolutions of eq. 3
share one Conv1x1, as the equation writes ``E_ch(·)`` once.
"""
from __future__ import annotations

import math
from typing import Sequence, Type, Union

import torch
from torch import nn
from torch.nn.modules.conv import _ConvNd

from nnunet_msa.blocks.geometry import same_padding
from nnunet_msa.blocks.geometry import as_per_axis, conv_dim


class ContextAwareFusion(nn.Module):
    """(F1: (B, C, *S), F2: (B, C, *S)) -> F̂: (B, C, *S)."""

    def __init__(self, conv_op: Type[_ConvNd], channels: int, kernel_size: Union[int, Sequence[int]] = 3,
                 conv_bias: bool = True) -> None:
        super().__init__()
        C = channels
        self.channels = C
        k = as_per_axis(kernel_size, conv_dim(conv_op), "kernel_size")
        self.ch_in = conv_op(2 * C, 2 * C, 1, bias=conv_bias)        # eq. 3, the inner Conv
        self.ch_out = conv_op(4 * C, 2 * C, 1, bias=conv_bias)       # eq. 3, the Conv over Cat(P_avg, P_max)
        self.fuse = conv_op(2 * C, C, 1, bias=conv_bias)             # eq. 4
        self.sp_f1 = conv_op(C, C, 1, bias=conv_bias)                # eq. 5, Conv(F1)
        self.sp_f2 = conv_op(C, C, 1, bias=conv_bias)                # eq. 5, Conv(F2)
        self.sp_out = conv_op(1, 1, k, padding=same_padding(k), bias=True)  # eq. 5, the outer Conv

    def channel_weights(self, f: torch.Tensor) -> torch.Tensor:
        """w_ch of eq. 3 for f = [F1; F2], (B, 2C, 1, ...)."""
        h = self.ch_in(f)
        dims = tuple(range(2, f.dim()))
        return torch.sigmoid(self.ch_out(torch.cat((h.mean(dim=dims, keepdim=True),
                                                     h.amax(dim=dims, keepdim=True)), dim=1)))

    def spatial_weights(self, f1: torch.Tensor, f2: torch.Tensor) -> torch.Tensor:
        """w_sp of eq. 5, (B, 1, *S)."""
        return torch.sigmoid(self.sp_out((self.sp_f1(f1) + self.sp_f2(f2)).mean(1, keepdim=True)))

    def forward(self, f1: torch.Tensor, f2: torch.Tensor) -> torch.Tensor:
        f = torch.cat((f1, f2), dim=1)
        fused = self.fuse(self.channel_weights(f) * f)                 # eq. 4
        return self.spatial_weights(f1, f2) * fused                    # eq. 6

    def compute_conv_feature_map_size(self, input_size: Sequence[int]) -> int:
        """Maps kept for backward (2C inner conv, 2C weighted, C fused, C spatial sum, C output), halved as
        nnU-Net's planner counts a conv block."""
        n = math.prod(int(i) for i in input_size)
        return int(7 * self.channels * n // 2)
