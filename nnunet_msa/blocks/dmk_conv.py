"""FIAS's depthwise multi-kernel convolution (DMK; Liu et al., "FIAS", Sec. 2.2, eq. 1-2), in place of SACM.

    L   = Conv_{k_s}(X)                                 (eq. 1, local feature, k_s = the planned kernel: C_in -> C_out)
    Z_m = DWConv_{k_m}(L),  k_m = 2(m + 1) + 1 = 5, 7   (eq. 1, depthwise multi-scale context, m = 1, 2)
    F   = Conv1x1(L + Z_1 + Z_2)                         (eq. 2)

Eq. 1 prints ``DWConv(L_{l-1})``; the text ("first a small kernel convolution ..., followed by parallel depthwise
convolutions") and Fig. 1b apply them to L_l, as here. Depthwise kernels are 5 and 7 on every axis the plans
convolve and 1 on the others (anisotropic 3D plans).
"""
from __future__ import annotations

import math
from typing import Sequence, Tuple, Type, Union

import torch
from torch import nn
from torch.nn.modules.conv import _ConvNd

from nnunet_msa.blocks.fast_conv import fast_conv
from nnunet_msa.blocks.geometry import same_padding, widen_kernel
from nnunet_msa.blocks.geometry import as_per_axis, conv_dim


class DepthwiseMultiKernelConv(nn.Module):
    """(B, C_in, *S) -> (B, C_out, *S), stride 1, 'same' padding."""

    def __init__(self, conv_op: Type[_ConvNd], input_channels: int, output_channels: int,
                 kernel_size: Union[int, Sequence[int]] = 3, context_kernels: Tuple[int, ...] = (5, 7),
                 bias: bool = False) -> None:
        super().__init__()
        k = as_per_axis(kernel_size, conv_dim(conv_op), "kernel_size")
        self.output_channels = output_channels
        self.local = conv_op(input_channels, output_channels, k, padding=same_padding(k), bias=bias)
        self.context = nn.ModuleList()
        for size in context_kernels:
            km = widen_kernel(k, size)
            self.context.append(conv_op(output_channels, output_channels, km, padding=same_padding(km),
                                        groups=output_channels, bias=bias))
        self.pointwise = conv_op(output_channels, output_channels, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        local = self.local(x)
        total = local
        for dw in self.context:  # depthwise, through fast_conv (CPU: channels-last, slice-wise for (1, k, k))
            total = total + fast_conv(local, dw.weight, dw.bias, dw.padding, dw.dilation, dw.groups)
        return self.pointwise(total)

    def compute_conv_feature_map_size(self, input_size: Sequence[int]) -> int:
        """L, each Z_m, the sum and F (C_out each), halved as nnU-Net's planner counts a conv block."""
        n = math.prod(int(i) for i in input_size)
        return int((len(self.context) + 3) * self.output_channels * n // 2)
