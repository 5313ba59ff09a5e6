"""MSADecoder (MSA2-Net with SACM in nnU-Net, Sec. "MSADecoder"), on nnU-Net's encoders.

Per decoder stage, lowest resolution first, as dynamic_network_architectures' ``UNetDecoder``:

    up = TransposedConv(h_below)                      (to the skip's channels and size)
    s  = MASAG(bridge(skip), up)                      (bridge and MASAG can each be switched off)
    h  = blocks(concat(up, s))                        (SACM -> norm -> nonlin; first 2C -> C, later residual)
    seg = Conv1x1(h)                                  (a head per stage, always built)

``skip_gate`` puts another gate in MASAG's place (``blocks/skip_gates.py``) and ``MultiScaleConvConfig.kind`` another
multi-scale conv in SACM's (``blocks/multiscale_conv.py``).

With ``deep_supervision`` the forward returns n_stages - 1 outputs, highest resolution first (what nnU-Net's deep
supervision loss zips with its targets), otherwise the full-resolution output only.
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import List, Optional, Sequence, Union

import numpy as np
import torch
from torch import nn

from dynamic_network_architectures.building_blocks.helper import get_matching_convtransp
from dynamic_network_architectures.building_blocks.plain_conv_encoder import PlainConvEncoder
from dynamic_network_architectures.building_blocks.residual_encoders import ResidualEncoder

from nnunet_msa.blocks.adaptive_conv_block import AdaptiveConvNormAct
from nnunet_msa.blocks.ms_conv_bridge import MSConvBridge
from nnunet_msa.blocks.geometry import as_per_axis, conv_dim
from nnunet_msa.blocks.multiscale_conv import MultiScaleConvConfig
from nnunet_msa.blocks.skip_gates import check_skip_gate, make_skip_gate


def skip_spatial_sizes(strides: Sequence, input_size: Sequence[int]) -> List[List[int]]:
    """Spatial size of each encoder skip (all levels but the bottleneck, highest resolution first) for an encoder
    input of ``input_size``; decoder stage s (0 = lowest resolution) works at ``[-(s + 1)]``."""
    sizes, size = [], list(input_size)
    for stride in strides[:-1]:
        size = [i // j for i, j in zip(size, as_per_axis(stride, len(size), "strides"))]
        sizes.append(size)
    return sizes


def stage_enabled(limit: Optional[int], stage: int, n_stages: int) -> bool:
    """Whether decoder ``stage`` (0 = lowest resolution) of ``n_stages`` gets a module placed with ``limit``:
    the stages ``range(n_stages)[:limit]`` (None all, 2 the two lowest, -1 all but the full-resolution one)."""
    return stage in range(n_stages)[:limit]


def check_stage_dilations(sacm_dilations: Optional[Sequence], n_levels: int) -> Optional[List]:
    """``sacm_dilations`` of the plans (one entry per skip level, highest resolution first, as nnU-Net lists
    ``kernel_sizes``; each K per-axis dilations) checked for its length; None stays None (fixed 1, 2, ..., K)."""
    if sacm_dilations is None:
        return None
    levels = list(sacm_dilations)
    if len(levels) != n_levels:
        raise ValueError(f"sacm_dilations has {len(levels)} entries, the network has {n_levels} skip levels "
                         f"(n_stages - 1, highest resolution first): re-plan with `nnunet-msa plan` or remove "
                         f"sacm_dilations from the plans' arch_kwargs.")
    return levels


def stage_sacm_config(sacm: MultiScaleConvConfig, sacm_dilations: Optional[List], stage: int,
                      enabled: bool = True) -> MultiScaleConvConfig:
    """The multi-scale conv config of decoder ``stage`` (0 = lowest resolution): its planned dilations
    (``sacm_dilations[-(stage + 1)]``) if there are any, SACM switched off where the placement leaves it out."""
    dilations = None
    if sacm_dilations is not None:
        dilations = tuple(tuple(int(v) for v in d) for d in sacm_dilations[-(stage + 1)])
    return replace(sacm, enabled=sacm.enabled and enabled, dilations=dilations)


class MSADecoderStage(nn.Module):
    """(concat(up, s): (B, 2C, *S)) -> (B, C, *S): a 2C -> C block, then residual C -> C blocks (with
    ``zero_residuals`` each residual block starts at zero output, ``init="static"``). ``residual=False``: the
    blocks in sequence, as nnU-Net's decoder stage (for stages with static convs only)."""

    def __init__(self, n_blocks: int, make_block, zero_residuals: bool = False, residual: bool = True) -> None:
        super().__init__()
        if n_blocks < 1:
            raise ValueError(f"every decoder stage needs at least one conv, got n_conv_per_stage_decoder={n_blocks}")
        self.blocks = nn.ModuleList([make_block(first=i == 0) for i in range(n_blocks)])
        self.residual = residual
        if zero_residuals and residual:
            for block in self.blocks[1:]:
                block.zero_init_output()

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = self.blocks[0](h)
        for block in self.blocks[1:]:
            h = h + block(h) if self.residual else block(h)
        return h

    def compute_conv_feature_map_size(self, input_size: Sequence[int]) -> int:
        """The blocks' counts plus one map (half a unit) per residual sum, nnU-Net's planner unit."""
        n = math.prod(int(s) for s in input_size)
        sums = len(self.blocks) - 1 if self.residual else 0
        return int(sum(b.compute_conv_feature_map_size(input_size) for b in self.blocks)
                   + sums * self.blocks[-1].output_channels * n // 2)


class MSADecoder(nn.Module):
    """Decoder over the skips of a ``PlainConvEncoder`` or ``ResidualEncoder`` (bottleneck last)."""

    def __init__(
        self,
        encoder: Union[PlainConvEncoder, ResidualEncoder],
        num_classes: int,
        n_conv_per_stage: Union[int, Sequence[int]],
        deep_supervision: bool,
        sacm: MultiScaleConvConfig = MultiScaleConvConfig(),
        use_bridge: bool = True,
        use_masag: bool = True,
        n_bridge: int = 2,
        bridge_stages: Optional[int] = None,
        masag_stages: Optional[int] = None,
        sacm_stages: Optional[int] = None,
        skip_gate: str = "masag",
        residual_static_stages: bool = True,
        sacm_dilations: Optional[Sequence] = None,
    ) -> None:
        """``bridge_stages``, ``masag_stages``, ``sacm_stages``: in how many decoder stages, counted from the lowest
        resolution, the module is used, as a slice ``[:limit]`` of the stages: None all, 2 the two lowest, -1 all
        but the full-resolution one. Where SACM is not used, the stage has static convs, in residual form
        (``residual_static_stages``) or in sequence as in nnU-Net's decoder. ``masag_stages`` places whichever
        ``skip_gate`` is chosen; ``use_masag=False`` means no gate at all. ``sacm_dilations``: the planned
        candidates' dilations per skip level (``check_stage_dilations``), for SACM in the stage and its bridge."""
        super().__init__()
        self.deep_supervision = deep_supervision
        self.encoder = encoder
        self.num_classes = num_classes
        n_enc = len(encoder.output_channels)
        if isinstance(n_conv_per_stage, int):
            n_conv_per_stage = [n_conv_per_stage] * (n_enc - 1)
        if len(n_conv_per_stage) != n_enc - 1:
            raise ValueError(f"n_conv_per_stage_decoder needs {n_enc - 1} entries (encoder stages - 1), got "
                             f"{list(n_conv_per_stage)}.")
        conv_op = encoder.conv_op
        dim = conv_dim(conv_op)
        transpconv_op = get_matching_convtransp(conv_op=conv_op)
        norm = dict(norm_op=encoder.norm_op, norm_op_kwargs=encoder.norm_op_kwargs)
        act = dict(nonlin=encoder.nonlin, nonlin_kwargs=encoder.nonlin_kwargs)
        kernels = [as_per_axis(k, dim, "kernel_sizes") for k in encoder.kernel_sizes]
        strides = [as_per_axis(s, dim, "strides") for s in encoder.strides]
        skip_gate = check_skip_gate(skip_gate) if use_masag else "none"
        sacm_dilations = check_stage_dilations(sacm_dilations, n_enc - 1)
        self.use_bridge, self.use_masag = use_bridge, skip_gate != "none"
        self.skip_gate = skip_gate

        transpconvs, bridges, gates, stages, seg_layers = [], [], [], [], []
        def within(limit: Optional[int], stage: int) -> bool:
            return stage_enabled(limit, stage, n_enc - 1)

        for s in range(1, n_enc):
            stage_sacm = stage_sacm_config(sacm, sacm_dilations, s - 1, within(sacm_stages, s - 1))
            with_bridge = use_bridge and within(bridge_stages, s - 1)
            with_masag = use_masag and within(masag_stages, s - 1)
            c_below, c_skip = encoder.output_channels[-s], encoder.output_channels[-(s + 1)]
            kernel = kernels[-(s + 1)]
            transpconvs.append(transpconv_op(c_below, c_skip, strides[-s], strides[-s], bias=encoder.conv_bias))
            bridges.append(MSConvBridge(conv_op, c_skip, kernel, n_bridge, stage_sacm, encoder.conv_bias, **norm,
                                        **act) if with_bridge else nn.Identity())
            gates.append(make_skip_gate(skip_gate if with_masag else "none", conv_op, c_skip, kernel, **norm, **act,
                                        identity_start=sacm.init == "static"))

            def make_block(first: bool, c=c_skip, k=kernel, cfg=stage_sacm) -> AdaptiveConvNormAct:
                return AdaptiveConvNormAct(conv_op, 2 * c if first else c, c, k, cfg, encoder.conv_bias, **norm,
                                           dropout_op=encoder.dropout_op, dropout_op_kwargs=encoder.dropout_op_kwargs,
                                           **act)

            stages.append(MSADecoderStage(n_conv_per_stage[s - 1], make_block, zero_residuals=sacm.init == "static",
                                          residual=stage_sacm.enabled or residual_static_stages))
            seg_layers.append(conv_op(c_skip, num_classes, 1, 1, 0, bias=True))
        self.transpconvs = nn.ModuleList(transpconvs)
        self.bridges = nn.ModuleList(bridges)
        self.gates = nn.ModuleList(gates) if self.use_masag else None  # nn.Identity where a stage has no gate
        self.stages = nn.ModuleList(stages)
        self.seg_layers = nn.ModuleList(seg_layers)

    def forward(self, skips: List[torch.Tensor]) -> Union[torch.Tensor, List[torch.Tensor]]:
        """skips: encoder outputs, bottleneck last. Returns the logits (B, num_classes, *S) or, with deep
        supervision, the list of n_stages - 1 logits, highest resolution first."""
        h = skips[-1]
        seg_outputs = []
        n = len(self.stages)
        for s in range(n):
            h = self.decode_stage(s, h, skips)
            if self.deep_supervision:
                seg_outputs.append(self.seg_layers[s](h))
            elif s == n - 1:
                seg_outputs.append(self.seg_layers[-1](h))
        seg_outputs = seg_outputs[::-1]
        return seg_outputs if self.deep_supervision else seg_outputs[0]

    def decode_stage(self, s: int, h: torch.Tensor, skips: List[torch.Tensor]) -> torch.Tensor:
        """Stage ``s`` (0 = lowest resolution): (h_below (B, C_below, *S_below), skips) -> (B, C_skip, *S_skip)."""
        up = self.transpconvs[s](h)
        skip = self.bridges[s](skips[-(s + 2)])
        if self.gates is not None and not isinstance(self.gates[s], nn.Identity):
            skip = self.gates[s](skip, up)
        return self.stages[s](torch.cat((up, skip), dim=1))

    def compute_conv_feature_map_size(self, input_size: Sequence[int]) -> int:
        """Feature maps of the decoder for an encoder input of ``input_size``, in nnU-Net's planner unit (a static
        conv block = C·n for its two kept maps; the transposed conv counts C·n for the 2C-channel concatenation, as
        in nnU-Net's ``UNetDecoder``). Recomputed blocks count what they keep, not the maps they rebuild in
        backward: by then backward has freed the higher-resolution stages' maps, which are larger (the peak of a
        step is at the end of the forward pass)."""
        skip_sizes = skip_spatial_sizes(self.encoder.strides, input_size)
        out = np.int64(0)
        n = len(self.stages)
        for s in range(n):
            sz = skip_sizes[-(s + 1)]
            c = self.encoder.output_channels[-(s + 2)]
            voxels = math.prod(sz)
            out += self.stages[s].compute_conv_feature_map_size(sz)
            out += c * voxels  # concatenation (2C maps), counted as nnU-Net counts its transposed conv
            if isinstance(self.bridges[s], MSConvBridge):
                out += self.bridges[s].compute_conv_feature_map_size(sz)
            if self.gates is not None and not isinstance(self.gates[s], nn.Identity):
                out += self.gates[s].compute_conv_feature_map_size(sz)
                out += c * voxels // 2  # the upsampled feature, kept by the gate besides the concatenation
            if self.deep_supervision or s == n - 1:
                out += self.num_classes * voxels
        return int(out)
