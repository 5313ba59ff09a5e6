"""MSConvBridge (MSA2-Net with SACM in nnU-Net, Sec. "MSConvBridge"): y = x + F(x), F = n_bridge blocks of
SACM -> norm -> nonlin with the channels kept. It cleans an encoder skip before the decoder sees it. With
``sacm.init == "static"`` F starts at zero (its last norm's scale at 0), so the bridge starts as the identity."""
from __future__ import annotations

import math
from typing import Optional, Sequence, Type, Union

import torch
from torch import nn
from torch.nn.modules.conv import _ConvNd

from nnunet_msa.blocks.adaptive_conv_block import AdaptiveConvNormAct
from nnunet_msa.blocks.multiscale_conv import MultiScaleConvConfig


class MSConvBridge(nn.Module):
    """(B, C, *S) -> (B, C, *S), residual stack of ``n_bridge`` adaptive conv blocks."""

    def __init__(
        self,
        conv_op: Type[_ConvNd],
        channels: int,
        kernel_size: Union[int, Sequence[int]],
        n_bridge: int = 2,
        sacm: MultiScaleConvConfig = MultiScaleConvConfig(),
        conv_bias: bool = False,
        norm_op: Optional[Type[nn.Module]] = None,
        norm_op_kwargs: Optional[dict] = None,
        nonlin: Optional[Type[nn.Module]] = None,
        nonlin_kwargs: Optional[dict] = None,
    ) -> None:
        super().__init__()
        self.channels = channels
        if n_bridge < 1:
            raise ValueError(f"MSConvBridge needs n_bridge >= 1 blocks, got {n_bridge}; switch the bridge off "
                             "with use_bridge=False instead.")
        self.blocks = nn.Sequential(*[
            AdaptiveConvNormAct(conv_op, channels, channels, kernel_size, sacm, conv_bias, norm_op, norm_op_kwargs,
                                None, None, nonlin, nonlin_kwargs) for _ in range(n_bridge)])
        if sacm.init == "static":
            self.blocks[-1].zero_init_output()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.blocks(x)

    def compute_conv_feature_map_size(self, input_size: Sequence[int]) -> int:
        """The blocks' count plus the residual sum (one map, half a unit), nnU-Net's planner unit."""
        n = math.prod(int(s) for s in input_size)
        return int(sum(b.compute_conv_feature_map_size(input_size) for b in self.blocks) + self.channels * n // 2)
