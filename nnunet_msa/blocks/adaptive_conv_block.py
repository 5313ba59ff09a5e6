"""SACM -> dropout -> norm -> nonlin, the unit from which MSConvBridge and MSADecoder are built.

``MultiScaleConvConfig.kind`` can put another multi-scale convolution in SACM's place (``blocks/multiscale_conv.py``: FIAS's
DMK, selective kernel). With ``MultiScaleConvConfig(enabled=False)`` (or kind "static") the SACM is replaced by a static
``conv_op`` of the planned kernel size, which makes the block identical to dynamic_network_architectures'
``ConvDropoutNormReLU`` (the "noSACM" ablation).
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Type, Union

import torch
from torch import nn
from torch.nn.modules.conv import _ConvNd

from nnunet_msa.blocks.multiscale_conv import make_multiscale_conv
from nnunet_msa.blocks.norm_act import make_act, make_norm
from nnunet_msa.blocks.recompute import maybe_recompute
from nnunet_msa.blocks.geometry import as_per_axis, conv_dim
from nnunet_msa.blocks.multiscale_conv import MultiScaleConvConfig


class AdaptiveConvNormAct(nn.Module):
    """(B, C_in, *S) -> (B, C_out, *S): SACM (or a static conv) -> dropout -> norm -> nonlin, stride 1."""

    def __init__(
        self,
        conv_op: Type[_ConvNd],
        input_channels: int,
        output_channels: int,
        kernel_size: Union[int, Sequence[int]],
        sacm: MultiScaleConvConfig = MultiScaleConvConfig(),
        conv_bias: bool = False,
        norm_op: Optional[Type[nn.Module]] = None,
        norm_op_kwargs: Optional[dict] = None,
        dropout_op: Optional[Type[nn.Module]] = None,
        dropout_op_kwargs: Optional[dict] = None,
        nonlin: Optional[Type[nn.Module]] = None,
        nonlin_kwargs: Optional[dict] = None,
    ) -> None:
        super().__init__()
        dim = conv_dim(conv_op)
        kernel_size = as_per_axis(kernel_size, dim, "kernel_size")
        self.output_channels = output_channels
        self.recompute = False  # keep only x for backward and rerun the block then (see blocks/recompute.py)
        self.conv: nn.Module = make_multiscale_conv(conv_op, input_channels, output_channels, kernel_size, sacm,
                                                    conv_bias, norm_op, norm_op_kwargs, nonlin, nonlin_kwargs)
        self.dropout = dropout_op(**(dropout_op_kwargs or {})) if dropout_op is not None else nn.Identity()
        self.norm = make_norm(norm_op, output_channels, norm_op_kwargs)
        self.nonlin = make_act(nonlin, nonlin_kwargs)

    def zero_init_output(self) -> None:
        """Start the block's output at zero: its norm's scale (and shift) at 0, so nonlin(0) = 0 (LeakyReLU, ReLU).
        For the last block of a residual branch (``init="static"``: the branch starts as the identity). A norm
        without affine parameters cannot be zeroed; the block then keeps its initialization."""
        weight, bias = getattr(self.norm, "weight", None), getattr(self.norm, "bias", None)
        if isinstance(weight, torch.Tensor):
            with torch.no_grad():
                weight.zero_()
                if isinstance(bias, torch.Tensor):
                    bias.zero_()

    def _block(self, x: torch.Tensor) -> torch.Tensor:
        return self.nonlin(self.norm(self.dropout(self.conv(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return maybe_recompute(self.recompute, self._block, x)

    def compute_conv_feature_map_size(self, input_size: Sequence[int]) -> int:
        """What the block keeps for backward, in nnU-Net's planner unit (a static conv -> norm -> nonlin block keeps
        two maps, conv and norm output, and counts as one ``C_out * n``): C_out·n for a static conv; half that for a
        recomputed block (only its output is kept, by the next op); ``working_set`` for a SACM block kept whole."""
        n = math.prod(int(s) for s in input_size)
        if not self.is_multiscale:
            return int(self.output_channels * n)
        if self.recompute:
            return int(self.output_channels * n // 2)
        return self.working_set(input_size)

    @property
    def is_multiscale(self) -> bool:
        """Whether the conv is one of the multi-scale kinds (not a static conv)."""
        return not isinstance(self.conv, nn.modules.conv._ConvNd)

    def working_set(self, input_size: Sequence[int]) -> int:
        """What the block holds for backward when it is not recomputed, in the same unit: the SACM's maps
        (K responses, mixture, pointwise output) plus the norm output, halved."""
        n = math.prod(int(s) for s in input_size)
        if not self.is_multiscale:
            return int(self.output_channels * n)
        return int((self.conv.compute_conv_feature_map_size(input_size) + self.output_channels * n) // 2)
