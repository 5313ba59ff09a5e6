"""Selective-kernel convolution (Li et al., "Selective Kernel Networks", CVPR 2019, Sec. 3.1), in place of SACM.

    U_m = ReLU(norm(Conv_{k, dilation m}(X)))           (split: M = 2 branches, 3x3 and 3x3 dilated 2 = 5x5 field)
    U   = Σ_m U_m;  s = mean_S(U)                       (fuse, eq. 1-2: (B, C))
    z   = ReLU(W_z s)                                   (eq. 3, W_z ∈ R^{d × C}, d = max(C / r, L), L = 32)
    a_m = softmax_m(A_m z)                              (select, eq. 5: per channel, over the M branches)
    V   = Σ_m a_m ⊙ U_m                                 (eq. 6)

The paper puts batch norm in eq. 3 (δ(B(W s))); nnU-Net trains and predicts with batch sizes down to 1 on
InstanceNorm plans, so z has no norm here. Branch norm and nonlinearity are the plans' (InstanceNorm, LeakyReLU).
The branch selection (a_m) runs in float32 under autocast.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Type, Union

import torch
from torch import nn
from torch.nn.modules.conv import _ConvNd

from nnunet_msa.blocks.fast_conv import fast_conv
from nnunet_msa.blocks.geometry import same_padding
from nnunet_msa.blocks.norm_act import make_act, make_norm
from nnunet_msa.blocks.geometry import as_per_axis, conv_dim


class SelectiveKernelConv(nn.Module):
    """(B, C_in, *S) -> (B, C_out, *S), stride 1, 'same' padding."""

    def __init__(self, conv_op: Type[_ConvNd], input_channels: int, output_channels: int,
                 kernel_size: Union[int, Sequence[int]] = 3, num_branches: int = 2, reduction: int = 16,
                 min_hidden: int = 32, bias: bool = False, norm_op: Optional[Type[nn.Module]] = None,
                 norm_op_kwargs: Optional[dict] = None, nonlin: Optional[Type[nn.Module]] = None,
                 nonlin_kwargs: Optional[dict] = None) -> None:
        super().__init__()
        k = as_per_axis(kernel_size, conv_dim(conv_op), "kernel_size")
        C = output_channels
        self.output_channels = C
        self.num_branches = num_branches
        self.branches = nn.ModuleList()
        for m in range(1, num_branches + 1):
            dil = tuple(m if i > 1 else 1 for i in k)
            self.branches.append(nn.Sequential(
                conv_op(input_channels, C, k, padding=same_padding(k, dil), dilation=dil, bias=bias),
                make_norm(norm_op, C, norm_op_kwargs), make_act(nonlin, nonlin_kwargs)))
        hidden = max(C // reduction, min_hidden)
        self.squeeze = conv_op(C, hidden, 1, bias=False)                 # W_z
        self.select = conv_op(hidden, num_branches * C, 1, bias=False)  # A_1, ..., A_M stacked

    def branch_weights(self, u: torch.Tensor) -> torch.Tensor:
        """a, (B, M, C, 1, ...): softmax over the branches of A_m z, per channel (eq. 3-5), float32."""
        s = u.mean(dim=tuple(range(2, u.dim())), keepdim=True)
        logits = self.select(torch.relu(self.squeeze(s)))
        logits = logits.view(u.shape[0], self.num_branches, self.output_channels, *logits.shape[2:])
        return torch.softmax(logits.float(), dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = []
        for conv, norm, act in self.branches:  # the dilated branch through fast_conv (CPU 3D: polyphase)
            outs.append(act(norm(fast_conv(x, conv.weight, conv.bias, conv.padding, conv.dilation, conv.groups))))
        u = outs[0]
        for o in outs[1:]:
            u = u + o
        a = self.branch_weights(u)
        v = a[:, 0].to(outs[0].dtype) * outs[0]
        for m in range(1, self.num_branches):
            v = v + a[:, m].to(outs[m].dtype) * outs[m]
        return v

    def compute_conv_feature_map_size(self, input_size: Sequence[int]) -> int:
        """Per branch conv and norm output (one unit each), the sum and the selection, nnU-Net's planner unit."""
        n = math.prod(int(i) for i in input_size)
        return int((self.num_branches + 1) * self.output_channels * n)
