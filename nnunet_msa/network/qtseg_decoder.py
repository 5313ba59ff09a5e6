"""QTSeg's dual-mix attention decoder (Tran et al., "QTSeg", Sec. III-B, Fig. 3-4) on nnU-Net's encoders, 2D and 3D.

Per decoder stage, lowest resolution first, with per-class query tokens QT (B, n_cls, C_s) carried along:

    h       = MSADecoder stage (transposed conv up, [gate](skip), conv blocks of concat)       (nnU-Net's U-shape)
    h, QT   = DualMixAttention(h, QT)                                  (CAB, SAM, CTFA, CFTA; blocks/dual_mix_attention)
    seg_s   = <h, Head_s(QT)> over channels → (B, n_cls, *S_s)                 ("dot product of feature and tokens")
    QT      = MLP_s(QT): C_s -> C_{s+1}                                       (to the next stage's channels)

The tokens start as a learned (n_cls, C_bottom) parameter. With deep supervision every stage's mask is returned
(highest resolution first), as nnU-Net's loss expects. Kept from nnU-Net rather than QTSeg: the planned transposed
conv and conv blocks do the upsampling (QTSeg: transposed conv + LayerNorm + GELU), so the decoder follows the plans'
kernels, strides and channels.
"""
from __future__ import annotations

from typing import List, Sequence, Union

import torch
from torch import nn

from nnunet_msa.blocks.dual_mix_attention import DualMixAttention
from nnunet_msa.blocks.geometry import as_per_axis, conv_dim
from nnunet_msa.network.msa_decoder import MSADecoder, skip_spatial_sizes


class QTSegDecoder(MSADecoder):
    """``MSADecoder``'s stages with a DMA block and a token mask head each (no 1x1 seg layers)."""

    def __init__(self, encoder, num_classes: int, n_conv_per_stage, deep_supervision: bool, *args, **kwargs) -> None:
        super().__init__(encoder, num_classes, n_conv_per_stage, deep_supervision, *args, **kwargs)
        del self.seg_layers  # the masks come from the tokens
        dim = conv_dim(encoder.conv_op)
        n_enc = len(encoder.output_channels)
        channels = [encoder.output_channels[-(s + 1)] for s in range(1, n_enc)]   # per decoder stage
        kernels = [as_per_axis(encoder.kernel_sizes[-(s + 1)], dim, "kernel_sizes") for s in range(1, n_enc)]
        self.query_tokens = nn.Parameter(torch.randn(num_classes, channels[0]) * 0.02)
        self.dma = nn.ModuleList([DualMixAttention(encoder.conv_op, c, k, encoder.norm_op, encoder.norm_op_kwargs)
                                  for c, k in zip(channels, kernels)])
        self.token_heads = nn.ModuleList([nn.Linear(c, c) for c in channels])
        self.token_mlps = nn.ModuleList([nn.Sequential(nn.Linear(a, b), nn.GELU(), nn.Linear(b, b))
                                         for a, b in zip(channels[:-1], channels[1:])])

    def forward(self, skips: List[torch.Tensor]) -> Union[torch.Tensor, List[torch.Tensor]]:
        """skips: encoder outputs, bottleneck last -> logits (B, n_cls, *S) or the deep-supervision list."""
        h = skips[-1]
        qt = self.query_tokens.unsqueeze(0).expand(h.shape[0], -1, -1)
        seg_outputs = []
        n = len(self.stages)
        for s in range(n):
            h = self.decode_stage(s, h, skips)
            h, qt = self.dma[s](h, qt)
            if self.deep_supervision or s == n - 1:
                seg_outputs.append(torch.einsum("bc...,bkc->bk...", h, self.token_heads[s](qt).to(h.dtype)))
            if s < n - 1:
                qt = self.token_mlps[s](qt)
        seg_outputs = seg_outputs[::-1]
        return seg_outputs if self.deep_supervision else seg_outputs[0]

    def compute_conv_feature_map_size(self, input_size: Sequence[int]) -> int:
        """``MSADecoder``'s count plus the DMA blocks' (the masks replace the seg layers' maps one for one)."""
        out = super().compute_conv_feature_map_size(input_size)
        skip_sizes = skip_spatial_sizes(self.encoder.strides, input_size)
        for s, dma in enumerate(self.dma):
            out += dma.compute_conv_feature_map_size(skip_sizes[-(s + 1)])
        return int(out)
