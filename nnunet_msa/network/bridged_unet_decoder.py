"""BridgedUNetDecoder: nnU-Net's own ``UNetDecoder`` (dynamic_network_architectures) with an ``MSConvBridge`` on
each skip and nothing else of MSA2: the ``bridgeOnly`` ablation of the MSA2-Net paper (its Table 6, "bridge")."""
from __future__ import annotations

from typing import List, Optional, Sequence, Union

import torch
from torch import nn

from dynamic_network_architectures.building_blocks.plain_conv_encoder import PlainConvEncoder
from dynamic_network_architectures.building_blocks.residual_encoders import ResidualEncoder
from dynamic_network_architectures.building_blocks.unet_decoder import UNetDecoder

from nnunet_msa.blocks.ms_conv_bridge import MSConvBridge
from nnunet_msa.blocks.geometry import as_per_axis, conv_dim
from nnunet_msa.blocks.multiscale_conv import MultiScaleConvConfig
from nnunet_msa.network.msa_decoder import check_stage_dilations, skip_spatial_sizes, stage_enabled, \
    stage_sacm_config


class BridgedUNetDecoder(UNetDecoder):
    """skips (encoder outputs, bottleneck last) -> ``UNetDecoder``'s output, after ``bridge(skip)`` for the skips of
    the stages ``bridge_stages`` selects (counted from the lowest resolution, as in ``MSADecoder``)."""

    def __init__(
        self,
        encoder: Union[PlainConvEncoder, ResidualEncoder],
        num_classes: int,
        n_conv_per_stage: Union[int, Sequence[int]],
        deep_supervision: bool,
        sacm: MultiScaleConvConfig = MultiScaleConvConfig(),
        n_bridge: int = 2,
        bridge_stages: Optional[int] = None,
        nonlin_first: bool = False,
        sacm_dilations: Optional[Sequence] = None,
    ) -> None:
        super().__init__(encoder, num_classes, n_conv_per_stage, deep_supervision, nonlin_first)
        dim = conv_dim(encoder.conv_op)
        n_dec = len(encoder.output_channels) - 1
        sacm_dilations = check_stage_dilations(sacm_dilations, n_dec)
        bridges = []
        for s in range(n_dec):
            c_skip = encoder.output_channels[-(s + 2)]
            kernel = as_per_axis(encoder.kernel_sizes[-(s + 2)], dim, "kernel_sizes")
            bridges.append(MSConvBridge(encoder.conv_op, c_skip, kernel, n_bridge,
                                        stage_sacm_config(sacm, sacm_dilations, s), encoder.conv_bias,
                                        encoder.norm_op, encoder.norm_op_kwargs, encoder.nonlin,
                                        encoder.nonlin_kwargs)
                           if stage_enabled(bridge_stages, s, n_dec) else nn.Identity())
        self.bridges = nn.ModuleList(bridges)

    def forward(self, skips: List[torch.Tensor]) -> Union[torch.Tensor, List[torch.Tensor]]:
        """As ``UNetDecoder.forward``; the skip of decoder stage s (``skips[-(s + 2)]``) goes through bridge s."""
        bridged = list(skips)
        for s, bridge in enumerate(self.bridges):
            bridged[-(s + 2)] = bridge(skips[-(s + 2)])
        return super().forward(bridged)

    def compute_conv_feature_map_size(self, input_size: Sequence[int]) -> int:
        """``UNetDecoder``'s count plus the bridges' (nnU-Net's planner unit; ``input_size`` of the encoder)."""
        out = int(super().compute_conv_feature_map_size(input_size))
        skip_sizes = skip_spatial_sizes(self.encoder.strides, input_size)
        for s, bridge in enumerate(self.bridges):
            if isinstance(bridge, MSConvBridge):
                out += bridge.compute_conv_feature_map_size(skip_sizes[-(s + 1)])
        return int(out)
